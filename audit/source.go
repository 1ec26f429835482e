package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/config"
)

// DeadLetterStream is the JetStream stream that keeps dead letters.
const DeadLetterStream = "AUDITRELAY_DEADLETTER"

// AckWait is how long JetStream waits for an acknowledgement before it
// redelivers. It bounds how soon a restarted sidecar gets back what a killed
// one held (SPEC §5: within 30 seconds); longer work sends InProgress.
const AckWait = 20 * time.Second

// DuplicateWindow is the shortest duplicate window the audit stream should
// have: the ingest's message ids make a repeat of an entry within it stored
// once (SPEC §6). JetStream's default is two minutes.
const DuplicateWindow = 10 * time.Minute

// Source is auditrelay's side of NATS: one connection, the audit stream and
// the dead-letter stream, and the durable consumers read from them.
type Source struct {
	nc       *nats.Conn
	js       jetstream.JetStream
	cfg      config.NATS
	dlPrefix string
	log      *slog.Logger
	cache    decodeCache // shared by the source's consumers
	ingest   bool
	closed   chan struct{} // closed with the connection
}

// Options are what Connect needs beside the config.
type Options struct {
	// TLS is the client TLS configuration built from auditrelay.nats.tls
	// (nil: none, or whatever the URL scheme implies).
	TLS *tls.Config
	// InProcess, when set, connects to an embedded server without a socket.
	InProcess nats.InProcessConnProvider
	// DeadLetterSubject is auditrelay.deadLetter.subject.
	DeadLetterSubject string
	Logger            *slog.Logger
	// Ingest says the ingest listener stores entries through this source:
	// an existing audit stream whose duplicate window is shorter than
	// DuplicateWindow is then worth a warning.
	Ingest bool
}

// Connect starts connecting to NATS and returns at once: when the server is
// unreachable or refuses the credentials the client keeps trying with backoff
// and logs each failure, and Ensure fails until it succeeds.
func Connect(cfg config.NATS, opts Options) (*Source, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	closed := make(chan struct{})
	nopts, err := natsOptions(cfg, opts, log, closed)
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(servers(cfg), nopts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream context: %w", err)
	}
	return &Source{nc: nc, js: js, cfg: cfg, dlPrefix: opts.DeadLetterSubject, log: log, ingest: opts.Ingest, closed: closed}, nil
}

func servers(cfg config.NATS) string {
	if len(cfg.Servers) > 0 {
		return strings.Join(cfg.Servers, ",")
	}
	return cfg.URL
}

func natsOptions(cfg config.NATS, opts Options, log *slog.Logger, closed chan struct{}) ([]nats.Option, error) {
	o := []nats.Option{
		nats.Name("auditrelay"),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("NATS connected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("NATS connection attempt failed", "err", err) }),
		nats.ErrorHandler((&natsErrors{log: log, now: time.Now}).handle),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
	}
	if opts.InProcess != nil {
		o = append(o, nats.InProcessServer(opts.InProcess))
	}
	if opts.TLS != nil {
		o = append(o, nats.Secure(opts.TLS))
	}
	a := cfg.Auth
	switch {
	case a.CredsFile != "":
		o = append(o, nats.UserCredentials(a.CredsFile))
	case a.NkeyFile != "":
		nk, err := nats.NkeyOptionFromSeed(a.NkeyFile)
		if err != nil {
			return nil, fmt.Errorf("auditrelay.nats.auth.nkeyFile (%s): %w", a.NkeyFile, err)
		}
		o = append(o, nk)
	case a.Token != "":
		o = append(o, nats.Token(string(a.Token)))
	case a.User != "":
		o = append(o, nats.UserInfo(a.User, string(a.Password)))
	}
	return o, nil
}

// Connected reports whether the connection to NATS is up.
func (s *Source) Connected() bool { return s.nc.IsConnected() }

// Close closes the connection, flushing what was published.
// It drains first: what was published is flushed and acknowledgements
// sent, within a few seconds.
func (s *Source) Close() {
	if s.nc.IsClosed() {
		return
	}
	if err := s.nc.Drain(); err == nil {
		select {
		case <-s.closed:
		case <-time.After(5 * time.Second):
		}
	}
	s.nc.Close()
}

// Conn is the underlying connection (for publishing tools).
func (s *Source) Conn() *nats.Conn { return s.nc }

// Ensure creates or binds the audit stream and the dead-letter stream. It
// fails while NATS is unreachable; callers retry.
func (s *Source) Ensure(ctx context.Context) error {
	if err := s.ensureAudit(ctx); err != nil {
		return err
	}
	return s.ensureDeadLetters(ctx)
}

func (s *Source) ensureAudit(ctx context.Context) error {
	sc := s.cfg.Stream
	st, err := s.js.Stream(ctx, sc.Name)
	if err == nil {
		s.checkDuplicates(st.CachedInfo().Config)
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", sc.Name, err)
	}
	if !sc.Create {
		return fmt.Errorf("stream %s does not exist and auditrelay.nats.stream.create is false", sc.Name)
	}
	_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: sc.Name, Subjects: []string{s.cfg.Subject}, Storage: jetstream.FileStorage,
		MaxAge: sc.MaxAge, Replicas: sc.Replicas, Description: "TheHive audit trail, read by auditrelay",
		Duplicates: DuplicateWindow,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("create stream %s: %w", sc.Name, err)
	}
	if err == nil {
		s.log.Info("created stream", "stream", sc.Name, "subject", s.cfg.Subject)
	}
	return nil
}

// checkDuplicates warns when the ingest relies on a duplicate window the
// existing stream does not have: `check` reads files only, so this is said
// when `run` binds the stream.
func (s *Source) checkDuplicates(sc jetstream.StreamConfig) {
	if !s.ingest || sc.Duplicates >= DuplicateWindow {
		return
	}
	s.log.Warn("the audit stream's duplicate window is shorter than the ingest needs: an entry TheHive sends again later than that is stored twice",
		"stream", sc.Name, "duplicates", sc.Duplicates, "want", DuplicateWindow,
		"fix", fmt.Sprintf("nats stream edit %s --dupe-window %s", sc.Name, DuplicateWindow))
}

// ErrNotConnected is returned by PublishEntry while NATS is unreachable.
var ErrNotConnected = errors.New("not connected to NATS")

// PublishEntry stores data, unchanged, on subject in the audit stream with
// msgID as its Nats-Msg-Id, and returns JetStream's acknowledgement: the
// entry's sequence, and whether it was a duplicate of one stored within the
// stream's duplicate window. While NATS is unreachable it fails at once
// with ErrNotConnected rather than waiting on the reconnect buffer.
func (s *Source) PublishEntry(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error) {
	if !s.nc.IsConnected() {
		return nil, ErrNotConnected
	}
	msg := &nats.Msg{Subject: subject, Data: data}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID), jetstream.WithExpectStream(s.cfg.Stream.Name))
	if err != nil {
		return nil, fmt.Errorf("store entry on %s: %w", subject, err)
	}
	return ack, nil
}

func (s *Source) ensureDeadLetters(ctx context.Context) error {
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DeadLetterStream, Subjects: []string{s.dlPrefix + ".>"}, Storage: jetstream.FileStorage,
		Replicas: s.cfg.Stream.Replicas, Description: "auditrelay dead letters", Duplicates: DeadLetterDuplicates,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", DeadLetterStream, err)
	}
	return nil
}

// Entry reads the entry at seq from the audit stream, for the thin format's
// fetch API and replay. It returns jetstream.ErrMsgNotFound when the stream
// no longer keeps it.
func (s *Source) Entry(ctx context.Context, seq uint64) (*Message, error) {
	raw, err := s.rawEntry(ctx, seq)
	if err != nil {
		return nil, err
	}
	e, err := Decode(raw.Data, s.cfg.MaxEntryBytes)
	if err != nil {
		return nil, err
	}
	return &Message{Entry: e, Seq: raw.Sequence, Time: raw.Time}, nil
}

// entryData is the message at seq of the audit stream, as published.
func (s *Source) entryData(ctx context.Context, seq uint64) ([]byte, error) {
	raw, err := s.rawEntry(ctx, seq)
	if err != nil {
		return nil, err
	}
	return raw.Data, nil
}

func (s *Source) rawEntry(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	st, err := s.js.Stream(ctx, s.cfg.Stream.Name)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", s.cfg.Stream.Name, err)
	}
	return st.GetMsg(ctx, seq)
}
