// Package ingest is the HTTP listener TheHive's own webhooks post their
// audit trail to (SPEC §6): each POST is one audit entry, stored unchanged
// in the audit stream with a JetStream acknowledgement before the answer,
// so TheHive's fire-and-forget hop ends at a local listener and everything
// after it is durable.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// Timeouts of the listener. A TheHive POST is one small entry sent at
// once; a client slower than these holds a connection for nothing.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	// storeTimeout bounds waiting for JetStream's acknowledgement; past
	// it the answer is 503 and the sender may try again (the message id
	// makes the retry a duplicate if the first one was stored after all).
	storeTimeout = 5 * time.Second
	// retryAfter is the Retry-After of a 503, in seconds.
	retryAfter = "5"
)

// Store is where the ingest keeps what it receives: the audit stream for
// entries and the dead-letter stream for the rest. *audit.Source is one.
type Store interface {
	PublishEntry(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error)
	PublishDeadLetter(ctx context.Context, dl audit.DeadLetter, data []byte) (uint64, error)
}

// Options are what a Server needs beside its config.
type Options struct {
	Store Store
	// Registerer receives the ingest metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// ShutdownTimeout bounds the drain on shutdown (default 30s).
	ShutdownTimeout time.Duration
}

// Server is the ingest listener.
type Server struct {
	cfg      config.Ingest
	opts     Options
	log      *slog.Logger
	metrics  *metrics
	ln       net.Listener
	srv      *http.Server
	serving  atomic.Bool
	closeOne sync.Once
}

// New loads the TLS stores and binds the listener: every fallible step of
// a start. A store problem names its key path and file.
func New(cfg config.Ingest, o Options) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("ingest: no store")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 30 * time.Second
	}
	tc, err := TLSConfig(cfg, time.Now())
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("auditrelay.ingest.listen: %w", err)
	}
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	s := &Server{cfg: cfg, opts: o, log: o.Logger, metrics: m, ln: ln}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout, WriteTimeout: writeTimeout,
		IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes,
		ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn), // TLS handshake failures
	}
	return s, nil
}

// TLSConfig is the listener's TLS from auditrelay.ingest.tls, nil for plain
// HTTP: the server certificate from the key stores and, with trust stores,
// client certificates required and verified against them. `check` calls it
// to report store problems without listening.
func TLSConfig(cfg config.Ingest, now time.Time) (*tls.Config, error) {
	if !cfg.HTTPS() {
		return nil, nil
	}
	pair, err := tlsconf.LoadKeyPair(cfg.TLS.KeyManager.Stores, now)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{Certificates: []tls.Certificate{*pair}, MinVersion: tls.VersionTLS12}
	if len(cfg.TLS.TrustManager.Stores) > 0 {
		pool, _, err := tlsconf.LoadTrust(cfg.TLS.TrustManager.Stores)
		if err != nil {
			return nil, err
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Addr is the listener's address (useful with port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL is the address to give TheHive: http(s)://<listen>/.
func (s *Server) URL() string {
	scheme := "http"
	if s.cfg.HTTPS() {
		scheme = "https"
	}
	return scheme + "://" + s.Addr() + "/"
}

// Ready reports whether the listener is serving.
func (s *Server) Ready() bool { return s.serving.Load() }

// Run serves until ctx ends, then drains: it stops accepting, lets the
// requests being stored finish (up to ShutdownTimeout) and returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.Close()
	errc := make(chan error, 1)
	s.serving.Store(true)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		s.serving.Store(false)
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("ingest listener: %w", err)
	case <-ctx.Done():
	}
	s.serving.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("ingest drain: %w", err)
	}
	return nil
}

// Close stops the listener at once, without draining. It is idempotent.
func (s *Server) Close() {
	s.closeOne.Do(func() {
		s.serving.Store(false)
		_ = s.srv.Close()
		_ = s.ln.Close()
	})
}
