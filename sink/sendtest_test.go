package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/proxytest"
)

const testServerSubject = "CN=auditrelay test server,O=auditrelay tests"

// hookRecorder is a webhook endpoint that records what it got and answers
// with code.
type hookRecorder struct {
	mu     sync.Mutex
	bodies [][]byte
	header []http.Header
	code   int
}

func (h *hookRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies, h.header = append(h.bodies, body), append(h.header, r.Header.Clone())
	h.mu.Unlock()
	w.WriteHeader(h.code)
	fmt.Fprint(w, `{"error":"not today"}`)
}

func (h *hookRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.bodies)
}

func (h *hookRecorder) got(t *testing.T) ([]byte, http.Header) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.bodies) != 1 {
		t.Fatalf("endpoint got %d requests, want 1", len(h.bodies))
	}
	return h.bodies[0], h.header[0]
}

// startHookServer is an https endpoint with the test server certificate,
// recording requests; configure may require a client certificate.
func startHookServer(t *testing.T, code int, configure func(*httptest.Server)) (*tlsServer, *hookRecorder) {
	rec := &hookRecorder{code: code}
	srv := startTLSServer(t, "server", func(s *httptest.Server) {
		s.Config.Handler = rec
		if configure != nil {
			configure(s)
		}
	})
	return srv, rec
}

func sendTest(t *testing.T, wh *config.Webhook) TestResult {
	t.Helper()
	w, err := New(*wh, Options{Stream: "THEHIVE_AUDIT", Version: "test"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return w.SendTest(ctx)
}

// TestSendTestUsesTheWebhooksRealPath: mutual TLS with a PKCS12 key store,
// bearer auth, a static header and a Standard Webhooks signature, all on
// the test entry, and the TLS peer reported.
func TestSendTestUsesTheWebhooksRealPath(t *testing.T) {
	srv, rec := startHookServer(t, http.StatusOK, requireClientCert(t))
	wh := testWebhook(srv.URL + "/hook")
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "JKS", "truststore.jks")
	wh.WS.SSL.KeyManager.Stores = []config.Store{keyStore(t, "PKCS12", "client.p12")}
	wh.Auth = config.Auth{Type: "bearer", Key: "tok-123"}
	wh.Headers = map[string]string{"X-Tenant": "soc-1"}
	wh.Signing.Secrets = []config.Secret{signSecretA}

	res := sendTest(t, wh)
	if !res.OK() || res.Status != "200" || res.Err != nil {
		t.Fatalf("result %+v, want a 200", res)
	}
	if res.TLSVersion != "TLS 1.3" || res.PeerSubject != testServerSubject || !res.PeerVerified {
		t.Errorf("TLS %q, peer %q verified %v; want TLS 1.3, %q, verified", res.TLSVersion, res.PeerSubject, res.PeerVerified, testServerSubject)
	}
	if res.Proxy != "direct" || res.Latency <= 0 || res.Webhook != "siem" || res.URL != srv.URL+"/****" {
		t.Errorf("result %+v", res)
	}
	body, h := rec.got(t)
	checkTestEntry(t, body, res.ObjectID)
	for name, want := range map[string]string{
		"Authorization": "Bearer tok-123", "X-Tenant": "soc-1", "User-Agent": "auditrelay/test",
		"Auditrelay-Attempt": "1", "Content-Type": "application/json",
		"Webhook-Id": "THEHIVE_AUDIT.siem.test-" + res.ObjectID,
	} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if err := verifyWith(t, signSecretA, body, h); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
}

func checkTestEntry(t *testing.T, body []byte, id string) {
	t.Helper()
	var e struct {
		Operation, ObjectType, ObjectID, RootID string
		StartDate                               int64
		Details                                 struct{ Title string }
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	age := time.Since(time.UnixMilli(e.StartDate))
	if e.Operation != "Creation" || e.ObjectType != "webhook.test" || e.ObjectID != id || e.RootID != id ||
		e.Details.Title != "auditrelay send-test" || age < 0 || age > time.Minute {
		t.Errorf("test entry %s (objectId want %q)", body, id)
	}
}

// TestSendTestFreshObjectIDs: two tests are two distinct entries.
func TestSendTestFreshObjectIDs(t *testing.T) {
	srv, _ := startHookServer(t, http.StatusOK, nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	a, b := sendTest(t, wh), sendTest(t, wh)
	if a.ObjectID == b.ObjectID || len(a.ObjectID) != 20 {
		t.Errorf("objectIds %q and %q: want two fresh 20-character ids", a.ObjectID, b.ObjectID)
	}
}

// TestSendTestThroughProxies: the proxy is reported without its
// credentials, and really used.
func TestSendTestThroughProxies(t *testing.T) {
	srv, _ := startHookServer(t, http.StatusOK, nil)
	httpP := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "pr0xy-pass"})
	socksP := proxytest.StartSOCKS5(t, proxytest.Options{User: "bob", Password: "s0cks-pass"})
	for _, tc := range []struct {
		protocol, addr, user, password string
		seen                           func() []proxytest.Request
		want                           proxytest.Request
	}{
		{"http", httpP.Addr(), "alice", "pr0xy-pass", httpP.Requests,
			proxytest.Request{Method: "CONNECT", Target: hostOf(srv.URL), Auth: proxytest.BasicAuth("alice", "pr0xy-pass")}},
		{"socks5", socksP.Addr(), "bob", "s0cks-pass", socksP.Requests,
			proxytest.Request{Method: "CONNECT", Target: hostOf(srv.URL), Auth: "bob:s0cks-pass"}},
	} {
		t.Run(tc.protocol, func(t *testing.T) {
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PKCS12", "truststore.p12")
			wh.WS.Proxy = proxyBlock(t, tc.addr, tc.protocol, tc.user, tc.password)
			res := sendTest(t, wh)
			if !res.OK() || res.PeerSubject != testServerSubject {
				t.Fatalf("result %+v", res)
			}
			if want := tc.protocol + "://" + tc.addr; res.Proxy != want {
				t.Errorf("Proxy = %q, want %q", res.Proxy, want)
			}
			if got := tc.seen(); len(got) != 1 || got[0] != tc.want {
				t.Errorf("proxy saw %+v, want [%+v]", got, tc.want)
			}
			if s := fmt.Sprintf("%+v", res); strings.Contains(s, tc.password) {
				t.Errorf("result shows the proxy password: %s", s)
			}
		})
	}
}

// TestSendTestWrongTrustStore: a tls failure, with the certificate the
// server presented named as unverified.
func TestSendTestWrongTrustStore(t *testing.T) {
	srv, rec := startHookServer(t, http.StatusOK, nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "JKS", "wrong-ca.jks")
	res := sendTest(t, wh)
	if res.OK() || res.Status != kindTLS || res.Outcome != Retry || res.Err == nil {
		t.Fatalf("result %+v, want a tls failure", res)
	}
	if res.PeerSubject != testServerSubject || res.PeerVerified || res.TLSVersion != "" {
		t.Errorf("peer %q verified %v version %q; want the unverified server certificate", res.PeerSubject, res.PeerVerified, res.TLSVersion)
	}
	if n := rec.count(); n != 0 {
		t.Errorf("endpoint got %d requests through a failed handshake", n)
	}
}

// TestSendTestNon2xx reports the status and the start of the body.
func TestSendTestNon2xx(t *testing.T) {
	srv, _ := startHookServer(t, http.StatusUnauthorized, nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	res := sendTest(t, wh)
	if res.OK() || res.Status != "401" || res.Body != `{"error":"not today"}` || res.TLSVersion == "" {
		t.Errorf("result %+v, want 401 with its body", res)
	}
}

// TestSendTestRedactsURL: a token in the query or userinfo never shows, in
// the URL nor in the error net/http builds from it.
func TestSendTestRedactsURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	wh := testWebhook("http://user:pa55word@" + addr + "/hook?token=t0ken-secret")
	res := sendTest(t, wh)
	if res.Status != kindConnect || res.Err == nil {
		t.Fatalf("result %+v, want a connect failure", res)
	}
	s := fmt.Sprintf("%+v %v", res, res.Err)
	for _, secret := range []string{"pa55word", "t0ken-secret"} {
		if strings.Contains(s, secret) {
			t.Errorf("result shows %q: %s", secret, s)
		}
	}
	if !strings.Contains(res.Err.Error(), addr) {
		t.Errorf("error %q does not name the endpoint", res.Err)
	}
}

// TestSendTestDisableSNI: without SNI net/http does not do the handshake
// itself (disableSNI dials TLS on its own), yet the peer is still reported.
func TestSendTestDisableSNI(t *testing.T) {
	srv, _ := startHookServer(t, http.StatusOK, nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.SSL.Loose.DisableSNI = true
	res := sendTest(t, wh)
	if !res.OK() || res.TLSVersion != "TLS 1.3" || res.PeerSubject != testServerSubject || !res.PeerVerified {
		t.Errorf("result %+v, want a 200 over TLS 1.3 from the verified test server", res)
	}
	if sni := srv.serverNames(); len(sni) != 1 || sni[0] != "" {
		t.Errorf("server names %q, want one handshake without SNI", sni)
	}
}

// TestSendTestAcceptAnyCertificate: a peer that was not verified is never
// reported as verified.
func TestSendTestAcceptAnyCertificate(t *testing.T) {
	srv, _ := startHookServer(t, http.StatusOK, nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "wrong-ca.pem")
	wh.WS.SSL.Loose.AcceptAnyCertificate = true
	res := sendTest(t, wh)
	if !res.OK() || res.PeerSubject != testServerSubject || res.PeerVerified {
		t.Errorf("result %+v, want a 200 from an unverified peer", res)
	}
}
