package sink

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// TestObjectType is the objectType of the entry SendTest sends, so a
// receiver can tell a test from the audit trail.
const TestObjectType = "webhook.test"

// TestResult is what one test request to a webhook gave (`auditrelay
// send-test`). Nothing in it holds a secret: URL is redacted and Err has
// the request's URL redacted too.
type TestResult struct {
	Webhook string
	URL     string // config.RedactURL: scheme://host:port/****
	Proxy   string // DescribeProxy: "direct" or the proxy without credentials
	// Status is the HTTP status code, or tls | proxy | connect | timeout
	// when there was no response; Outcome says what the engine would do.
	Status  string
	Outcome Outcome
	Err     error
	// Body is the start of a non-2xx response's body.
	Body    string
	Latency time.Duration
	// TLSVersion and PeerSubject describe the endpoint's TLS connection
	// ("" for plain http). After a failed verification PeerSubject is the
	// certificate the server presented and PeerVerified is false.
	TLSVersion   string
	PeerSubject  string
	PeerVerified bool
	// ObjectID is the test entry's objectId, to find it at the receiver.
	ObjectID string
}

// OK tells whether the endpoint answered 2xx.
func (r TestResult) OK() bool { return r.Outcome == Delivered && r.Err == nil }

// SendTest sends one test entry (objectType webhook.test, operation
// Creation, a fresh objectId) through the webhook's real path: its client
// (TLS stores, client certificate, proxy), format, auth, headers and
// signing, with the same attempt the delivery engine makes. The webhook's
// filter is not applied: a test is sent even to a webhook that would drop
// it. With format thin the eventId is 0, which the fetch API never serves.
func (w *Webhook) SendTest(ctx context.Context) TestResult {
	id := newTestID()
	res := TestResult{Webhook: w.cfg.Name, URL: config.RedactURL(w.cfg.URL), ObjectID: id}
	if target, err := url.Parse(w.cfg.URL); err == nil {
		res.Proxy = DescribeProxy(&w.cfg, target)
	}
	body, err := w.enc.Body(nil, []*audit.Message{testMessage(id)})
	if err != nil {
		res.Status, res.Outcome, res.Err = "encode", Permanent, err
		return res
	}
	var peer peerTrace
	start := time.Now()
	r := w.attempt(peer.context(ctx), testWebhookID(w.stream, w.cfg.Name, id), body, 1)
	res.Latency = time.Since(start)
	res.Status, res.Outcome, res.Err, res.Body = r.Status, r.Outcome, r.Err, r.snippet
	peer.fill(&res, r.Err)
	res.PeerVerified = res.PeerVerified && !w.cfg.WS.SSL.Loose.AcceptAnyCertificate
	return res
}

// testWebhookID is `<stream>.<webhook>.test-<objectId>`: WebhookID's shape
// with no stream sequence, since the test entry is not in the stream, and
// fresh per test so a receiver that deduplicates on it takes every test.
func testWebhookID(stream, webhook, id string) string {
	return strings.TrimSuffix(WebhookID(stream, webhook, 0, 0), "0") + "test-" + id
}

// newTestID is a fresh objectId: TheHive's ids are 20 characters.
func newTestID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// testMessage is the test entry, TheHive 3 shaped, as the stream would
// hold it.
func testMessage(id string) *audit.Message {
	now := time.Now()
	raw := `{"operation":"Creation","objectType":"` + TestObjectType + `","objectId":"` + id +
		`","rootId":"` + id + `","startDate":` + strconv.FormatInt(now.UnixMilli(), 10) +
		`,"requestId":"auditrelay-send-test","base":true,"details":{"title":"auditrelay send-test"}` +
		`,"object":{"_type":"` + TestObjectType + `","title":"auditrelay send-test","createdBy":"auditrelay"}}`
	e, err := audit.Decode([]byte(raw), 0)
	if err != nil {
		panic("sink: test entry does not decode: " + err.Error()) // a bug, never input
	}
	return &audit.Message{Entry: e, Time: now}
}

// peerTrace records the endpoint's TLS connection state. net/http does the
// handshake itself (TLSHandshakeDone), except for disableSNI's own dialer,
// whose *tls.Conn GotConn sees. Through an https proxy TLSHandshakeDone
// also reports the proxy's handshake; the last one, the endpoint's, wins.
type peerTrace struct {
	mu sync.Mutex
	cs *tls.ConnectionState
}

func (p *peerTrace) context(ctx context.Context) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				p.set(cs)
			}
		},
		GotConn: func(info httptrace.GotConnInfo) {
			if c, ok := info.Conn.(*tls.Conn); ok {
				p.set(c.ConnectionState())
			}
		},
	})
}

func (p *peerTrace) set(cs tls.ConnectionState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cs = &cs
}

// fill sets the TLS fields from the connection, or from the certificate a
// failed verification names.
func (p *peerTrace) fill(res *TestResult, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cs != nil {
		res.TLSVersion = tls.VersionName(p.cs.Version)
		if len(p.cs.PeerCertificates) > 0 {
			res.PeerSubject = p.cs.PeerCertificates[0].Subject.String()
			res.PeerVerified = true
		}
		return
	}
	if c := unverifiedPeer(err); c != nil {
		res.PeerSubject = c.Subject.String()
	}
}

// unverifiedPeer is the server certificate a verification error names.
func unverifiedPeer(err error) *x509.Certificate {
	var (
		verr *tls.CertificateVerificationError
		unk  x509.UnknownAuthorityError
		host x509.HostnameError
		inv  x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verr) && len(verr.UnverifiedCertificates) > 0:
		return verr.UnverifiedCertificates[0]
	case errors.As(err, &unk):
		return unk.Cert
	case errors.As(err, &host):
		return host.Certificate
	case errors.As(err, &inv):
		return inv.Cert
	}
	return nil
}
