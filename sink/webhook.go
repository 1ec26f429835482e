// Package sink delivers audit entries to one webhook: its HTTP client (TLS
// stores, client certificate, proxy), the request on the wire (format, auth,
// signing), the outcome of each attempt, retries, ordering by key, dead
// letters and acknowledgements.
package sink

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// Feed is where a webhook's entries come from: its durable consumer.
type Feed interface {
	// Next blocks until the next entry; after Drain it returns what was
	// already pulled, then an error.
	Next() (*audit.Message, error)
	// Drain stops pulling.
	Drain()
	// Stop stops pulling and drops what was pulled.
	Stop()
}

// DeadLetters stores the entries a webhook could not take.
type DeadLetters interface {
	// PublishDeadLetter returns once the dead letter is stored.
	PublishDeadLetter(ctx context.Context, dl audit.DeadLetter, data []byte) error
}

// Options are what a Webhook needs beside its config.
type Options struct {
	// Stream is the audit stream's name, part of every webhook-id.
	Stream string
	// Version is auditrelay's version, for the default User-Agent.
	Version     string
	DeadLetters DeadLetters
	Metrics     *Metrics
	Logger      *slog.Logger
	// ShutdownTimeout bounds how long in-flight attempts may finish once
	// Run's context ends; what is left is handed back to JetStream.
	ShutdownTimeout time.Duration
}

// Webhook delivers one webhook's entries. Everything fallible (stores,
// proxy, signing secrets, format) is done by New; Run only delivers.
type Webhook struct {
	cfg     config.Webhook
	url     *url.URL
	client  *http.Client
	enc     *Encoder
	signer  *Signer
	filter  *Filter
	headers http.Header
	dl      DeadLetters
	m       *webhookMetrics
	log     *slog.Logger
	stream  string
	grace   time.Duration
	maxHeld int
	// secrets are scrubbed from response snippets before they are logged.
	secrets []string
	up      atomic.Bool
}

// MaxAckPending is the bound on unacknowledged entries that suits a
// webhook: enough to keep maxInFlight requests of full batches busy while
// some keys wait on earlier entries, and small enough that memory stays
// flat however large the backlog in JetStream.
func MaxAckPending(wh *config.Webhook) int {
	return max(256, 4*wh.Delivery.MaxInFlight*wh.Batch.MaxEntries)
}

// New builds a webhook's client and request machinery.
func New(wh config.Webhook, o Options) (*Webhook, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("webhook", wh.Name)
	target, err := url.Parse(wh.URL)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: url: %w", wh.Name, err)
	}
	if err := ValidateHeaders(&wh); err != nil {
		return nil, fmt.Errorf("webhook %q: %w", wh.Name, err)
	}
	client, err := NewClient(&wh, log)
	if err != nil {
		return nil, err
	}
	enc, err := NewEncoder(&wh)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: %w", wh.Name, err)
	}
	w := &Webhook{
		cfg: wh, url: target, client: client, enc: enc, filter: NewFilter(wh.Filter),
		headers: StaticHeaders(&wh, o.Version), dl: o.DeadLetters, m: o.Metrics.forWebhook(wh.Name),
		log: log, stream: o.Stream, grace: o.ShutdownTimeout, maxHeld: MaxAckPending(&wh),
	}
	w.headers.Set("Content-Type", enc.ContentType())
	if len(wh.Signing.Secrets) > 0 {
		if w.signer, err = NewSigner(wh.Signing.Secrets); err != nil {
			return nil, fmt.Errorf("webhook %q: %w", wh.Name, err)
		}
	}
	w.secrets = secretsOf(&wh)
	w.up.Store(true)
	return w, nil
}

// secretsOf lists the webhook's secret values and the forms they travel in
// (a Basic credential is base64 on the wire).
func secretsOf(wh *config.Webhook) []string {
	var out []string
	add := func(s string) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	a := wh.Auth
	add(string(a.Password))
	add(string(a.Key))
	if a.Username != "" || a.Password != "" {
		add(base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + string(a.Password))))
	}
	for _, s := range wh.Signing.Secrets {
		add(string(s))
	}
	add(string(wh.WS.Proxy.Password))
	return out
}

// Name is the webhook's name as written.
func (w *Webhook) Name() string { return w.cfg.Name }

// Config is the webhook's configuration.
func (w *Webhook) Config() config.Webhook { return w.cfg }

// SetPending records the consumer's pending count (auditrelay_pending_entries).
func (w *Webhook) SetPending(n uint64) { w.m.pending.Set(float64(n)) }

// Close releases the webhook's idle connections.
func (w *Webhook) Close() { w.client.CloseIdleConnections() }
