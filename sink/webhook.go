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
	"slices"
	"strings"
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
	// PublishDeadLetter returns once the dead letter is stored, with its
	// sequence in the dead-letter stream.
	PublishDeadLetter(ctx context.Context, dl audit.DeadLetter, data []byte) (uint64, error)
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
	// secrets are scrubbed from response snippets and request errors
	// before they are logged or stored (scrub).
	secrets []string
	up      atomic.Bool
}

// MaxHeld is how many entries a webhook holds in memory at most: enough
// to keep maxInFlight requests of full batches busy while some keys wait
// on earlier entries, and small enough that memory stays flat however
// large the backlog in JetStream.
func MaxHeld(wh *config.Webhook) int {
	return max(256, 4*wh.Delivery.MaxInFlight*wh.Batch.MaxEntries)
}

// MaxAckPending is the bound on a webhook's unacknowledged entries in
// JetStream: what it holds (MaxHeld), what waits in its pull buffer, and
// the entries of keys that already hold their share (MaxHeld / 8), handed
// back to wait in JetStream. Those still count as unacknowledged there;
// this room for them lets other keys keep flowing behind a key that
// retries with many entries queued.
func MaxAckPending(wh *config.Webhook) int {
	return 4 * MaxHeld(wh)
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
		// Not err: url.Parse quotes the whole URL, credential and all.
		return nil, fmt.Errorf("webhook %q: url %s does not parse", wh.Name, config.RedactURL(wh.URL))
	}
	client, err := newClient(&wh, log)
	if err != nil {
		return nil, err
	}
	enc, err := NewEncoder(&wh)
	if err != nil {
		return nil, fmt.Errorf("webhook %q: %w", wh.Name, err)
	}
	w := &Webhook{
		cfg: wh, url: target, client: client, enc: enc, filter: NewFilter(wh.Filter),
		headers: staticHeaders(&wh, o.Version), dl: o.DeadLetters, m: o.Metrics.forWebhook(wh.Name),
		log: log, stream: o.Stream, grace: o.ShutdownTimeout, maxHeld: MaxHeld(&wh),
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

// secretsOf lists every configured secret of the webhook, and the forms
// it travels in, longest first (so a secret containing another is hidden
// whole): auth password and key, the Basic credential, signing secrets,
// every configured header value, the proxy password and its Basic
// credential, and the URL's userinfo, path, path segments and query
// values. Each also in base64. Values under 4 characters are left out:
// hiding them would blank out ordinary words of a snippet.
func secretsOf(wh *config.Webhook) []string {
	var ss secretSet
	a := wh.Auth
	ss.add(string(a.Password), string(a.Key))
	if a.Username != "" || a.Password != "" {
		ss.add(basic(a.Username, string(a.Password)))
	}
	for _, s := range wh.Signing.Secrets {
		ss.add(string(s))
	}
	for _, v := range wh.Headers {
		ss.add(v)
	}
	p := wh.WS.Proxy
	ss.add(string(p.Password))
	if p.User != "" || p.Password != "" {
		ss.add(basic(p.User, string(p.Password)))
	}
	ss.url(wh.URL)
	slices.SortFunc(ss.list, func(a, b string) int { return len(b) - len(a) })
	return ss.list
}

// secretSet collects secrets once each, with their base64 form.
type secretSet struct {
	list []string
	seen map[string]bool
}

func (ss *secretSet) add(values ...string) {
	for _, v := range values {
		for _, form := range []string{v, base64.StdEncoding.EncodeToString([]byte(v))} {
			if len(v) >= 4 && !ss.seen[form] {
				if ss.seen == nil {
					ss.seen = map[string]bool{}
				}
				ss.seen[form] = true
				ss.list = append(ss.list, form)
			}
		}
	}
}

// url adds what a webhook URL carries beside scheme, host and port: Slack,
// Teams and Discord put their credential in the path, others in the query.
// A path segment counts on its own when it looks like a token (8
// characters with a digit, or 16 and more): words such as "hooks" or
// "services" would otherwise be blanked out of every snippet.
func (ss *secretSet) url(raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		ss.add(u.User.String(), pw, basic(u.User.Username(), pw))
	}
	if u.Path != "/" {
		ss.add(u.Path, u.EscapedPath())
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if len(seg) >= 16 || len(seg) >= 8 && strings.ContainsAny(seg, "0123456789") {
			ss.add(seg, url.PathEscape(seg))
		}
	}
	ss.add(u.RawQuery)
	for _, vs := range u.Query() {
		for _, v := range vs {
			ss.add(v, url.QueryEscape(v))
		}
	}
}

// basic is the base64 form of a Basic credential, as it is on the wire.
func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// Name is the webhook's name as written.
func (w *Webhook) Name() string { return w.cfg.Name }

// Config is the webhook's configuration.
func (w *Webhook) Config() config.Webhook { return w.cfg }

// SetPending records the consumer's pending count (auditrelay_pending_entries).
func (w *Webhook) SetPending(n uint64) { w.m.pending.Set(float64(n)) }

// Close releases the webhook's idle connections.
func (w *Webhook) Close() { w.client.CloseIdleConnections() }
