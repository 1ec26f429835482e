package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/relay"
	"github.com/auditrelay/auditrelay/sink"
)

// connectWait bounds how long a one-off command waits for NATS.
const connectWait = 10 * time.Second

func cmdReplay(ctx context.Context, args []string, e *env) error {
	fs := flags("replay", e)
	path := configFlag(fs, e)
	name := fs.String("webhook", "", "the webhook to deliver to (required)")
	since := fs.String("since", "", "replay entries the stream stored at or after this RFC 3339 time")
	seq := fs.Uint64("seq", 0, "replay entries from this stream sequence")
	if err := parse(fs, args); err != nil {
		return err
	}
	from, err := replayFrom(fs.NArg(), *name, *since, *seq)
	if err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	wh, err := enabledWebhook(cfg, *name)
	if err != nil {
		return err
	}
	t, err := newTool(ctx, cfg, e)
	if err != nil {
		return err
	}
	defer t.close()
	return t.replay(ctx, wh, from)
}

// replayFrom checks replay's flags: a webhook, and exactly one start.
func replayFrom(nargs int, name, since string, seq uint64) (audit.ReplayFrom, error) {
	switch {
	case nargs > 0:
		return audit.ReplayFrom{}, usageError{errors.New("replay takes no arguments")}
	case name == "":
		return audit.ReplayFrom{}, usageError{errors.New("replay needs -webhook NAME")}
	case (since == "") == (seq == 0):
		return audit.ReplayFrom{}, usageError{errors.New("replay needs exactly one of -since TIME and -seq N (N >= 1)")}
	case seq > 0:
		return audit.ReplayFrom{Seq: seq}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, since)
	if err != nil {
		return audit.ReplayFrom{}, usageError{fmt.Errorf("-since %q is not an RFC 3339 time: %w", since, err)}
	}
	return audit.ReplayFrom{Time: t}, nil
}

// enabledWebhook is the webhook of cfg called name, which must be enabled.
func enabledWebhook(cfg *config.Config, name string) (config.Webhook, error) {
	wh := cfg.Webhook(name)
	switch {
	case wh == nil:
		return config.Webhook{}, usageError{fmt.Errorf("no webhook %q in %s", name, cfg.File)}
	case !wh.Enabled:
		return config.Webhook{}, usageError{fmt.Errorf("webhook %q is disabled (enabled = false)", name)}
	case wh.IngestHop:
		return config.Webhook{}, usageError{fmt.Errorf("webhook %q is auditrelay's own ingest listener, not a delivery target", name)}
	}
	return *wh, nil
}

// natsTool is what replay and deadletter share: a NATS connection made as run
// makes it, and webhooks built as run builds them, with their own metrics.
type natsTool struct {
	cfg     *config.Config
	src     *audit.Source
	log     *slog.Logger
	metrics *sink.Metrics
	out     io.Writer
	err     io.Writer
}

func newTool(ctx context.Context, cfg *config.Config, e *env) (*natsTool, error) {
	log := relay.NewLogger(config.Log{Level: "warn", Format: "text"}, e.stderr)
	src, err := connectTool(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	return &natsTool{cfg: cfg, src: src, log: log, metrics: sink.NewMetrics(prometheus.NewRegistry()), out: e.stdout, err: e.stderr}, nil
}

func (t *natsTool) close() { t.src.Close() }

// connectTool connects to the NATS of cfg as run does (url or servers,
// auth, tls), or to the listen address of the embedded server of a running
// `auditrelay run`, and waits until it is connected.
func connectTool(ctx context.Context, cfg *config.Config, log *slog.Logger) (*audit.Source, error) {
	nc := cfg.Auditrelay.NATS
	if nc.Embedded.Enabled {
		nc.URL, nc.Servers = "nats://"+nc.Embedded.Listen, nil
		// Nobody listening is known at once: say so rather than wait.
		c, err := net.DialTimeout("tcp", nc.Embedded.Listen, 2*time.Second)
		if err != nil {
			return nil, notReachable(nc, err)
		}
		c.Close()
	}
	tlsConf, err := relay.NATSTLS(nc.TLS, log)
	if err != nil {
		return nil, usageError{err}
	}
	// The connection's own log of every failed attempt is left out: the
	// error below says it once.
	src, err := audit.Connect(nc, audit.Options{TLS: tlsConf, DeadLetterSubject: cfg.Auditrelay.DeadLetter.Subject,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	if err := waitConnected(ctx, src); err != nil {
		src.Close()
		return nil, notReachable(nc, err)
	}
	return src, nil
}

func waitConnected(ctx context.Context, src *audit.Source) error {
	ctx, cancel := context.WithTimeout(ctx, connectWait)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !src.Connected() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func notReachable(nc config.NATS, err error) error {
	if nc.Embedded.Enabled {
		return fmt.Errorf("the embedded NATS server (auditrelay.nats.embedded.listen = %s) is not running: start `auditrelay run` with this config first (%w)",
			nc.Embedded.Listen, err)
	}
	servers := []string{config.RedactURL(nc.URL)}
	if len(nc.Servers) > 0 {
		servers = servers[:0]
		for _, s := range nc.Servers {
			servers = append(servers, config.RedactURL(s))
		}
	}
	return fmt.Errorf("NATS at %s not reachable or refusing the credentials (%w)", strings.Join(servers, ", "), err)
}

// replay delivers wh's entries from a point in the stream again, then
// prints what became of them.
func (t *natsTool) replay(ctx context.Context, wh config.Webhook, from audit.ReplayFrom) error {
	w, err := t.webhook(wh)
	if err != nil {
		return err
	}
	defer w.Close()
	rp, err := t.src.Replay(ctx, wh.Name, from, sink.MaxHeld(&wh))
	if err != nil {
		return fmt.Errorf("start replay: %w", err)
	}
	defer rp.Close()
	p := newProgress(t.err, "replayed")
	err = runFeed(ctx, w, rp, p)
	o := w.Outcomes()
	fmt.Fprintf(t.out, "%s: replayed %d, filtered %d, dead-lettered %d", wh.Name, o.Delivered, o.Filtered, o.DeadLettered)
	if n := rp.Invalid(); n > 0 {
		fmt.Fprintf(t.out, ", skipped %d invalid", n)
	}
	fmt.Fprintf(t.out, " (stream sequences up to %d)\n", rp.End())
	if err != nil {
		return fmt.Errorf("replay to %s: %w", wh.Name, err)
	}
	return nil
}

// webhook builds wh's sink as run does: its client, format, auth and
// signing, dead letters to the same stream.
func (t *natsTool) webhook(wh config.Webhook) (*sink.Webhook, error) {
	w, err := sink.New(wh, sink.Options{
		Stream: t.cfg.Auditrelay.NATS.Stream.Name, Version: version, DeadLetters: t.src, Metrics: t.metrics,
		Logger: t.log, ShutdownTimeout: t.cfg.Auditrelay.ShutdownTimeout,
	})
	if err != nil {
		return nil, usageError{fmt.Errorf("configuration %s:\n%s", t.cfg.File, indent(err.Error()))}
	}
	return w, nil
}

// oneOffFeed is a feed that ends: a replay or a redrive.
type oneOffFeed interface {
	sink.Feed
	Done() <-chan struct{}
	Err() error
	Finished() int
}

// runFeed delivers f through w until every entry f handed out is done,
// showing progress; an interruption leaves the rest for another run.
func runFeed(ctx context.Context, w *sink.Webhook, f oneOffFeed, p *progress) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(runCtx, f) }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-f.Done():
			cancel()
			<-ran
			p.done(f.Finished())
			return f.Err()
		case <-ctx.Done():
			<-ran
			p.done(f.Finished())
			return fmt.Errorf("interrupted after %d entries: %w", f.Finished(), ctx.Err())
		case <-tick.C:
			p.update(f.Finished())
		}
	}
}
