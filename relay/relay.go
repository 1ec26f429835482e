// Package relay runs the sidecar: it ties the NATS source (audit) to one
// delivery engine (sink) per webhook, supervises them through NATS outages
// and reloads, and serves the admin endpoints (/metrics, /healthz, /readyz,
// the event-fetch API). It exists so that cmd/auditrelay stays a thin
// command line and this supervision can be started in tests.
package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/ingest"
	"github.com/auditrelay/auditrelay/internal/backoff"
	"github.com/auditrelay/auditrelay/sink"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// Options are what a Relay needs beside its config.
type Options struct {
	Version, Revision string
	Logger            *slog.Logger
	// Registry receives the metrics; nil makes a new one.
	Registry *prometheus.Registry
}

// Relay is the running sidecar.
type Relay struct {
	opts     Options
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *metrics
	natsTLS  *tls.Config
	emb      *audit.Embedded // nil unless auditrelay.nats.embedded.enabled
	admin    net.Listener
	adminSrv *http.Server
	ingest   *ingest.Server // nil unless auditrelay.ingest.enabled

	src atomic.Pointer[audit.Source] // read by dead letters without mu

	intake     atomic.Pointer[audit.Intake] // nil until bound
	intakeRole roleValue

	cfg atomic.Pointer[config.Config] // the running configuration

	streamErr atomic.Pointer[string] // why the streams could not be made ready; nil once they are

	mu       sync.Mutex // guards webhooks, ctx
	webhooks map[string]*running
	ctx      context.Context // Run's once the webhooks started, for those a reload starts
	wg       sync.WaitGroup
	closeOne sync.Once
}

// running is one webhook's engine and the goroutine that feeds it.
type running struct {
	wh     *sink.Webhook
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	feed   *audit.Feed // nil until its consumer is bound
	role   roleValue   // this replica's, for /readyz
}

// New does every fallible step of a start up front: it builds every
// enabled webhook (trust stores, client certificates, proxies, signing) and
// binds the admin listener. Any error here is a configuration error.
func New(cfg *config.Config, o Options) (*Relay, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	r := &Relay{opts: o, log: o.Logger, reg: o.Registry, webhooks: map[string]*running{}}
	r.cfg.Store(cfg)
	r.metrics = newMetrics(o.Registry, o)
	var errs []error
	for _, wh := range cfg.Webhooks {
		if !delivered(&wh) {
			continue
		}
		w, err := r.build(cfg, wh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.webhooks[wh.Name] = &running{wh: w}
	}
	tlsConf, err := NATSTLS(cfg.Auditrelay.NATS.TLS, o.Logger)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.natsTLS = tlsConf
	if err := r.listen(cfg.Auditrelay.Admin.Listen); err != nil {
		return nil, err
	}
	if err := r.newIngest(cfg); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.connect(cfg); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// connect starts the embedded NATS server, when enabled, and the client
// connection, which keeps trying in the background while NATS is away.
func (r *Relay) connect(cfg *config.Config) error {
	var inProc nats.InProcessConnProvider
	if cfg.Auditrelay.NATS.Embedded.Enabled {
		emb, err := audit.StartEmbedded(cfg.Auditrelay.NATS.Embedded, r.log)
		if err != nil {
			return err
		}
		r.emb, inProc = emb, emb.Server()
	}
	src, err := audit.Connect(cfg.Auditrelay.NATS, audit.Options{
		TLS: r.natsTLS, InProcess: inProc, DeadLetterSubject: cfg.Auditrelay.DeadLetter.Subject, Logger: r.log,
		Ingest: cfg.Auditrelay.Ingest.Enabled,
	})
	if err != nil {
		return err
	}
	r.src.Store(src)
	return nil
}

// delivered tells the webhooks the sidecar delivers to: enabled, and not
// the ingest hop (TheHive's own webhook pointing at auditrelay's ingest
// listener, which would loop).
func delivered(wh *config.Webhook) bool { return wh.Enabled && !wh.IngestHop }

// newIngest loads the ingest's TLS stores and binds its listener, when
// it is enabled; it stores through whichever NATS source is current.
func (r *Relay) newIngest(cfg *config.Config) error {
	in := cfg.Auditrelay.Ingest
	if !in.Enabled {
		return nil
	}
	s, err := ingest.New(in, ingest.Options{Store: ingestStore{r}, Registerer: r.reg, Logger: r.log,
		ShutdownTimeout: cfg.Auditrelay.ShutdownTimeout})
	if err != nil {
		return err
	}
	r.ingest = s
	return nil
}

// ingestStore stores the ingest's entries and dead letters through the
// current source; none yet is NATS unavailable (503).
type ingestStore struct{ r *Relay }

func (s ingestStore) PublishEntry(ctx context.Context, subject, msgID string, data []byte) (*jetstream.PubAck, error) {
	src := s.r.source()
	if src == nil {
		return nil, audit.ErrNotConnected
	}
	return src.PublishEntry(ctx, subject, msgID, data)
}

func (s ingestStore) PublishDeadLetter(ctx context.Context, dl audit.DeadLetter, data []byte) (uint64, error) {
	return deadLetters(s).PublishDeadLetter(ctx, dl, data)
}

// IngestAddr is the ingest listener's address ("" when disabled).
func (r *Relay) IngestAddr() string {
	if r.ingest == nil {
		return ""
	}
	return r.ingest.Addr()
}

// Check builds what New would (every webhook's stores, client certificate,
// proxy and signing; the NATS TLS stores) without listening or connecting,
// and returns every problem: `auditrelay check`.
func Check(cfg *config.Config, log *slog.Logger) error {
	r := &Relay{opts: Options{Logger: log}, log: log, metrics: &metrics{sink: sink.NewMetrics(prometheus.NewRegistry())}}
	var errs []error
	for _, wh := range cfg.Webhooks {
		w, err := r.build(cfg, wh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.Close()
	}
	if _, err := NATSTLS(cfg.Auditrelay.NATS.TLS, log); err != nil {
		errs = append(errs, err)
	}
	if cfg.Auditrelay.Ingest.Enabled {
		if _, err := ingest.TLSConfig(cfg.Auditrelay.Ingest, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// CheckStores reads every store of cfg (the webhooks', the NATS client's,
// the ingest's) and returns every problem: `check` of a file whose other
// keys have problems.
func CheckStores(cfg *config.Config, log *slog.Logger) error {
	var errs []error
	for _, wh := range cfg.Webhooks {
		if err := tlsconf.CheckStores(wh.WS.SSL, time.Now()); err != nil {
			errs = append(errs, fmt.Errorf("webhook %q: %w", wh.Name, err))
		}
	}
	if _, err := NATSTLS(cfg.Auditrelay.NATS.TLS, log); err != nil {
		errs = append(errs, err)
	}
	if cfg.Auditrelay.Ingest.Enabled {
		if _, err := ingest.TLSConfig(cfg.Auditrelay.Ingest, time.Now()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *Relay) build(cfg *config.Config, wh config.Webhook) (*sink.Webhook, error) {
	return sink.New(wh, sink.Options{
		Stream: cfg.Auditrelay.NATS.Stream.Name, Version: r.opts.Version,
		Metrics: r.metrics.sink, Logger: r.log, ShutdownTimeout: cfg.Auditrelay.ShutdownTimeout,
		DeadLetters: deadLetters{r},
	})
}

// NATSTLS builds the client TLS of auditrelay.nats.tls, nil when unset:
// the sidecar's and the command-line tools' connections are the same.
func NATSTLS(t config.TLS, log *slog.Logger) (*tls.Config, error) {
	if len(t.TrustManager.Stores) == 0 && len(t.KeyManager.Stores) == 0 {
		return nil, nil
	}
	c, err := tlsconf.Client(config.SSL{TrustManager: t.TrustManager, KeyManager: t.KeyManager, Protocol: tls.VersionTLS12}, log)
	if err != nil {
		return nil, fmt.Errorf("auditrelay.nats.tls: %w", err)
	}
	return c.Config, nil
}

// deadLetters lets webhooks store dead letters through whichever source is
// current.
type deadLetters struct{ r *Relay }

func (d deadLetters) PublishDeadLetter(ctx context.Context, dl audit.DeadLetter, data []byte) (uint64, error) {
	src := d.r.source()
	if src == nil {
		return 0, errors.New("not connected to NATS")
	}
	return src.PublishDeadLetter(ctx, dl, data)
}

func (r *Relay) source() *audit.Source { return r.src.Load() }

// Run runs the sidecar until ctx ends, then shuts down within
// auditrelay.shutdownTimeout. NATS being unreachable is not an error: Run
// keeps trying and stays not ready.
func (r *Relay) Run(ctx context.Context) error {
	defer r.Close()
	cfg, src := r.config(), r.source()
	go r.serveAdmin()
	r.runIngest(ctx)
	r.logStart(cfg)
	if r.ensure(ctx, src) {
		r.startAll(ctx)
		r.wg.Go(func() { r.runIntake(ctx, src) })
		r.wg.Go(func() { r.pollConsumers(ctx) })
		<-ctx.Done()
	}
	r.wg.Wait() // every webhook's shutdown, each bounded by shutdownTimeout
	return nil
}

func (r *Relay) config() *config.Config { return r.cfg.Load() }

// runIngest serves the ingest listener from the start: until the streams
// are bound, it answers 503. Its drain on shutdown is part of stop, so it
// finishes storing before the NATS connection closes.
func (r *Relay) runIngest(ctx context.Context) {
	if r.ingest == nil {
		return
	}
	r.wg.Go(func() {
		if err := r.ingest.Run(ctx); err != nil {
			r.log.Error("ingest listener stopped", "err", err)
		}
	})
}

// ensure creates or binds the streams, retrying with backoff while NATS is
// unreachable; it returns false when ctx ends first.
func (r *Relay) ensure(ctx context.Context, src *audit.Source) bool {
	return backoff.Retry(ctx.Done(), backoff.New(250*time.Millisecond, 10*time.Second), func() error {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		err := src.Ensure(actx)
		if err == nil {
			r.streamErr.Store(nil)
			return nil
		}
		why := err.Error()
		r.streamErr.Store(&why)
		return err
	}, func(err error, wait time.Duration) {
		r.log.Warn("NATS not ready; retrying", "err", err, "retryIn", wait)
	})
}

// startAll starts the webhooks and, in the same step, lets reloads start
// theirs: a reload before it (NATS still unreachable) only changes the
// set that startAll then starts, so no webhook is started twice.
func (r *Relay) startAll(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx = ctx
	for _, rw := range r.webhooks {
		r.start(ctx, rw)
	}
}

// start runs a webhook in its own goroutine: bind its consumer (retrying
// while NATS is away), then deliver until its context ends. A delivery loop
// that ends before its context does is started again with backoff, never
// left stopped in silence. Called with mu.
func (r *Relay) start(parent context.Context, rw *running) {
	ctx, cancel := context.WithCancel(parent)
	rw.cancel, rw.done = cancel, make(chan struct{})
	src := r.source()
	name := rw.wh.Name()
	r.metrics.setActive(name, audit.RoleStandby)
	r.wg.Go(func() {
		defer close(rw.done)
		defer r.metrics.forgetActive(name)
		retry := backoff.New(250*time.Millisecond, 10*time.Second)
		for {
			feed := r.bind(ctx, src, rw.wh)
			if feed == nil {
				return
			}
			rw.setFeed(feed)
			err := rw.wh.Run(ctx, feed)
			feed.Release() // work done or handed back: another replica may start at once
			if ctx.Err() != nil {
				return
			}
			rw.setFeed(nil)
			wait := retry.Next()
			r.log.Error("webhook stopped delivering; starting it again", "webhook", name, "err", err, "retryIn", wait)
			if !backoff.Sleep(ctx.Done(), wait) {
				return
			}
		}
	})
}

func (rw *running) setFeed(f *audit.Feed) {
	rw.mu.Lock()
	rw.feed = f
	rw.mu.Unlock()
}

func (r *Relay) bind(ctx context.Context, src *audit.Source, w *sink.Webhook) *audit.Feed {
	cfg := w.Config()
	opts := audit.FeedOptions{MaxAckPending: sink.MaxAckPending(&cfg), Start: cfg.Delivery.Start, Ordered: cfg.Delivery.OrderBy.Ordered()}
	var feed *audit.Feed
	bound := backoff.Retry(ctx.Done(), backoff.New(250*time.Millisecond, 10*time.Second), func() (err error) {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		feed, err = src.Feed(actx, cfg.Name, opts)
		return err
	}, func(err error, wait time.Duration) {
		r.log.Warn("webhook consumer not bound; retrying", "webhook", cfg.Name, "err", err, "retryIn", wait)
	})
	if !bound {
		return nil // stopped while binding: nothing for an operator
	}
	r.log.Info("webhook consumer bound", "webhook", cfg.Name, "consumer", feed.Name())
	return feed
}

func (r *Relay) runIntake(ctx context.Context, src *audit.Source) {
	var in *audit.Intake
	bound := backoff.Retry(ctx.Done(), backoff.New(250*time.Millisecond, 10*time.Second), func() (err error) {
		in, err = src.Intake(ctx)
		return err
	}, func(err error, wait time.Duration) {
		r.log.Warn("intake consumer not bound; retrying", "err", err, "retryIn", wait)
	})
	if !bound {
		return
	}
	r.intake.Store(in)
	r.metrics.intakeBound.Store(true)
	_ = in.Run(ctx, r.metrics)
	in.Release()
}

func (r *Relay) runningWebhooks() []*running {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*running, 0, len(r.webhooks))
	for _, rw := range r.webhooks {
		out = append(out, rw)
	}
	return out
}

func (rw *running) boundFeed() *audit.Feed {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return rw.feed
}

// Close releases the admin listener and the webhooks' connections. It is
// idempotent.
func (r *Relay) Close() {
	r.closeOne.Do(func() {
		if r.adminSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = r.adminSrv.Shutdown(ctx)
		}
		if r.admin != nil {
			_ = r.admin.Close()
		}
		if r.ingest != nil {
			r.ingest.Close()
		}
		for _, rw := range r.runningWebhooks() {
			rw.wh.Close()
		}
		if src := r.source(); src != nil {
			src.Close()
		}
		if r.emb != nil {
			r.emb.Close()
		}
	})
}

func (r *Relay) logStart(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		r.log.Warn(w)
	}
	if r.ingest != nil {
		in := cfg.Auditrelay.Ingest
		r.log.Info("ingest listening", "url", r.ingest.URL(), "subject", in.Subject+".<objectType>",
			"auth", in.Auth.Type, "clientCertificates", len(in.TLS.TrustManager.Stores) > 0)
	}
	for _, rw := range r.runningWebhooks() {
		c := rw.wh.Config()
		target, _ := url.Parse(c.URL) // validated by config
		now := time.Now()
		r.log.Info("webhook", append([]any{"webhook", c.Name, "url", config.RedactURL(c.URL), "format", c.Format,
			"orderBy", c.Delivery.OrderBy, "maxInFlight", c.Delivery.MaxInFlight, "proxy", sink.DescribeProxy(&c, target)},
			storeAttrs(&c, now)...)...)
		if subject, days, soon := clientExpiresSoon(&c, now); soon {
			r.log.Warn("client certificate expires soon", "webhook", c.Name, "subject", subject, "days", days)
		}
	}
}
