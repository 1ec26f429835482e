package sink

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// testWebhook is a webhook with auditrelay's defaults for url.
func testWebhook(url string) *config.Webhook {
	wh := config.DefaultWebhook()
	wh.Name, wh.KeyPath, wh.URL = "siem", "webhooks.siem", url
	wh.WS.UseProxyProperties = false
	return &wh
}

func trustStore(t *testing.T, typ, name string) []config.Store {
	return []config.Store{fileStore(t, typ, name)}
}

func serverCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(testdata(t, name+".pem"), testdata(t, name+"-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func testCAPool(t *testing.T) *x509.CertPool {
	pool, _, err := tlsconf.LoadTrust(trustStore(t, "PEM", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// tlsServer answers 200 with the client certificate's CN (or "-"), and
// records the SNI each handshake carried.
type tlsServer struct {
	*httptest.Server
	mu  sync.Mutex
	sni []string
}

func startTLSServer(t *testing.T, certName string, configure func(*httptest.Server)) *tlsServer {
	t.Helper()
	s := &tlsServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, cn)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(t, certName)}}
	s.TLS.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sni = append(s.sni, hello.ServerName)
		return nil, nil
	}
	if configure != nil {
		configure(s.Server)
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *tlsServer) serverNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sni...)
}

func requireClientCert(t *testing.T) func(*httptest.Server) {
	pool := testCAPool(t)
	return func(s *httptest.Server) {
		s.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		s.TLS.ClientCAs = pool
	}
}

// get sends one GET with wh's client and returns the body.
func get(t *testing.T, wh *config.Webhook) (string, *http.Response, error) {
	t.Helper()
	client, err := newClient(wh, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	return do(t, client, wh.URL)
}

func do(t *testing.T, client *http.Client, url string) (string, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), resp, err
}

func TestMutualTLSWithEachKeyStore(t *testing.T) {
	srv := startTLSServer(t, "server", requireClientCert(t))
	keyStores := map[string]config.Store{
		"PKCS12":       keyStore(t, "PKCS12", "client.p12"),
		"PKCS12 plain": keyStore(t, "PKCS12", "bundle.p12"),
		"JKS":          keyStore(t, "JKS", "client.jks"),
		"keytool JKS":  keyStore(t, "JKS", "client-keytool.jks"),
		"PEM":          keyStore(t, "PEM", "client.pem"),
	}
	for name, ks := range keyStores {
		t.Run(name, func(t *testing.T) {
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "JKS", "truststore.jks")
			wh.WS.SSL.KeyManager.Stores = []config.Store{ks}
			body, _, err := get(t, wh)
			if err != nil {
				t.Fatal(err)
			}
			if body != "auditrelay test client" {
				t.Errorf("server saw client certificate %q", body)
			}
		})
	}
}

func TestEachTrustStoreVerifiesServer(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	stores := map[string][]config.Store{
		"PEM":            trustStore(t, "PEM", "ca.pem"),
		"JKS":            trustStore(t, "JKS", "truststore.jks"),
		"PKCS12":         trustStore(t, "PKCS12", "truststore.p12"),
		"keytool PKCS12": trustStore(t, "PKCS12", "truststore-keytool.p12"),
		"PKCS12 bundle":  trustStore(t, "PKCS12", "bundle.p12"),
		"inline PEM":     {{Type: "PEM", Data: string(readPEM(t, "ca.pem")), KeyPath: "k"}},
	}
	for name, s := range stores {
		t.Run(name, func(t *testing.T) {
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = s
			if body, _, err := get(t, wh); err != nil || body != "-" {
				t.Fatalf("got %q, %v", body, err)
			}
		})
	}
}

func TestTrustStoresReplaceSystemRoots(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "wrong-ca.pem")
	_, _, err := get(t, wh)
	if errorKind(err) != kindTLS {
		t.Fatalf("got %v (kind %q), want a TLS failure", err, errorKind(err))
	}
	tc, err := tlsconf.Client(config.SSL{}, nil)
	if err != nil || tc.Config.RootCAs != nil {
		t.Errorf("without stores RootCAs must be nil (system roots): %v, %v", tc.Config.RootCAs, err)
	}
}

func TestNewClientErrorsNameWebhookAndKey(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Webhook)
		want string
	}{
		{"trust store wrong password", func(wh *config.Webhook) {
			wh.WS.SSL.TrustManager.Stores = []config.Store{withPassword(fileStore(t, "JKS", "truststore.jks"), "nope")}
		}, `webhook "siem": webhooks.siem.ws.ssl.trustManager.stores[0] (` + testdata(t, "truststore.jks") + `): wrong password`},
		{"expired client certificate", func(wh *config.Webhook) {
			wh.WS.SSL.KeyManager.Stores = []config.Store{keyStore(t, "PKCS12", "expired-client.p12")}
		}, `webhook "siem": webhooks.siem.ws.ssl.keyManager.stores[0] (` + testdata(t, "expired-client.p12") + `): client certificate expired on 2025-01-01`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := testWebhook("https://127.0.0.1:1/")
			tt.edit(wh)
			_, err := newClient(wh, nil)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got  %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestTLSVersions(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	srv12 := startTLSServer(t, "server", func(s *httptest.Server) { s.TLS.MaxVersion = tls.VersionTLS12 })
	tests := []struct {
		name     string
		url      string
		protocol config.TLSVersion
		enabled  []config.TLSVersion
		want     uint16 // 0: handshake must fail
	}{
		{"default negotiates TLS 1.3", srv.URL, 0, nil, tls.VersionTLS13},
		{"default accepts TLS 1.2", srv12.URL, 0, nil, tls.VersionTLS12},
		{"protocol TLSv1.3 refuses a 1.2 server", srv12.URL, tls.VersionTLS13, nil, 0},
		{"enabledProtocols TLSv1.2 only", srv.URL, 0, []config.TLSVersion{tls.VersionTLS12}, tls.VersionTLS12},
		{"enabledProtocols TLSv1.3 only", srv12.URL, 0, []config.TLSVersion{tls.VersionTLS13}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := testWebhook(tt.url)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
			wh.WS.SSL.Protocol, wh.WS.SSL.EnabledProtocols = tt.protocol, tt.enabled
			_, resp, err := get(t, wh)
			if tt.want == 0 {
				if errorKind(err) != kindTLS {
					t.Fatalf("got %v, want a TLS failure", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.TLS.Version != tt.want {
				t.Errorf("negotiated %s, want %s", tls.VersionName(resp.TLS.Version), tls.VersionName(tt.want))
			}
		})
	}
}

func TestEnabledCipherSuites(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
			wh.WS.SSL.EnabledProtocols = []config.TLSVersion{tls.VersionTLS12}
			wh.WS.SSL.EnabledCipherSuites = []config.CipherSuite{config.CipherSuite(suite)}
			_, resp, err := get(t, wh)
			if err != nil {
				t.Fatal(err)
			}
			if resp.TLS.CipherSuite != suite {
				t.Errorf("negotiated %s", tls.CipherSuiteName(resp.TLS.CipherSuite))
			}
		})
	}
}

func TestLooseFlags(t *testing.T) {
	good := startTLSServer(t, "server", nil)
	wrongHost := startTLSServer(t, "wronghost-server", nil)
	tests := []struct {
		name  string
		url   string
		trust string
		loose config.Loose
		ok    bool
	}{
		{"strict: wrong host name fails", wrongHost.URL, "ca.pem", config.Loose{}, false},
		{"strict: unknown CA fails", good.URL, "wrong-ca.pem", config.Loose{}, false},
		{"acceptAnyCertificate: unknown CA accepted", good.URL, "wrong-ca.pem", config.Loose{AcceptAnyCertificate: true}, true},
		{"acceptAnyCertificate: wrong host accepted", wrongHost.URL, "wrong-ca.pem", config.Loose{AcceptAnyCertificate: true}, true},
		{"disableHostnameVerification: wrong host accepted", wrongHost.URL, "ca.pem", config.Loose{DisableHostnameVerification: true}, true},
		{"disableHostnameVerification: chain still verified", wrongHost.URL, "wrong-ca.pem", config.Loose{DisableHostnameVerification: true}, false},
		{"disableSNI: good server accepted", good.URL, "ca.pem", config.Loose{DisableSNI: true}, true},
		{"disableSNI: host name still verified", wrongHost.URL, "ca.pem", config.Loose{DisableSNI: true}, false},
		{"disableSNI: chain still verified", good.URL, "wrong-ca.pem", config.Loose{DisableSNI: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := testWebhook(tt.url)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", tt.trust)
			wh.WS.SSL.Loose = tt.loose
			_, _, err := get(t, wh)
			if tt.ok && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if !tt.ok && errorKind(err) != kindTLS {
				t.Fatalf("want a TLS failure, got %v", err)
			}
		})
	}
}

func TestDisableSNISendsNoServerName(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	url := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	for _, disable := range []bool{false, true} {
		wh := testWebhook(url)
		wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
		wh.WS.SSL.Loose.DisableSNI = disable
		if _, _, err := get(t, wh); err != nil {
			t.Fatalf("disableSNI=%v: %v", disable, err)
		}
	}
	if got, want := strings.Join(srv.serverNames(), ","), "localhost,"; got != want {
		t.Errorf("server names seen %q, want %q (localhost, then none)", got, want)
	}
}

func TestLooseFlagsWarnAndDebugLogsHandshake(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.SSL.Loose = config.Loose{DisableHostnameVerification: true, AcceptAnyCertificate: true, DisableSNI: true}
	wh.WS.SSL.Debug = true
	client, err := newClient(wh, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if _, _, err := do(t, client, wh.URL); err != nil {
		t.Fatal(err)
	}
	log := buf.String()
	for _, want := range []string{
		"acceptAnyCertificate is set", "disableHostnameVerification is set", "disableSNI is set",
		`msg="TLS handshake"`, `version="TLS 1.3"`, "cipherSuite=TLS_", "CN=auditrelay test server", "CN=auditrelay test CA",
		"changeit",
	} {
		if got := strings.Contains(log, want); got != (want != "changeit") {
			t.Errorf("log contains %q: %v\n%s", want, got, log)
		}
	}
}

func TestDebugOffLogsNothing(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	var buf bytes.Buffer
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	client, err := newClient(wh, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	if _, _, err := do(t, client, wh.URL); err != nil || buf.Len() != 0 {
		t.Fatalf("err %v, log %q", err, buf.String())
	}
}

func TestHTTP2WhenOffered(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(t, "server")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	if body, _, err := get(t, wh); err != nil || body != "HTTP/2.0" {
		t.Fatalf("got %q, %v; want HTTP/2.0", body, err)
	}
}

// redirectTarget is an endpoint whose /old answers code with Location
// /new, and whose /new records each request and answers 200.
type redirectTarget struct {
	*httptest.Server
	mu   sync.Mutex
	old  int
	news []*recorded
}

type recorded struct {
	method string
	header http.Header
	body   []byte
}

func newRedirectTarget(t *testing.T, code int) *redirectTarget {
	rt := &redirectTarget{}
	rt.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rt.mu.Lock()
		defer rt.mu.Unlock()
		if r.URL.Path == "/old" {
			rt.old++
			w.Header().Set("Location", "/new")
			w.WriteHeader(code)
			return
		}
		rt.news = append(rt.news, &recorded{method: r.Method, header: r.Header.Clone(), body: body})
	}))
	t.Cleanup(rt.Close)
	return rt
}

func (rt *redirectTarget) got() (old int, news []*recorded) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.old, append([]*recorded(nil), rt.news...)
}

// TestRedirects sends a signed POST through the webhook's real attempt to
// an endpoint answering each redirect code, with followRedirects true and
// false: 307 and 308 are followed only with followRedirects and arrive as
// the same POST with the exact body and a signature that still verifies;
// every other case is permanent with the redirect's status, and /new is
// never asked (a 301/302/303 would otherwise reach it as a GET).
func TestRedirects(t *testing.T) {
	for _, code := range []int{300, 301, 302, 303, 304, 305, 307, 308} {
		for _, follow := range []bool{true, false} {
			t.Run(fmt.Sprintf("%d/follow=%t", code, follow), func(t *testing.T) {
				rt := newRedirectTarget(t, code)
				wh := testWebhook(rt.URL + "/old")
				wh.WS.FollowRedirects = follow
				wh.Signing.Secrets = []config.Secret{signSecretA}
				w, err := New(*wh, Options{Stream: "THEHIVE_AUDIT", Version: "test"})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(w.Close)
				body := []byte(`{"operation":"Creation","objectType":"case","objectId":"r1"}`)
				res := w.attempt(t.Context(), "THEHIVE_AUDIT.siem.1", body, 1)
				old, news := rt.got()
				if old != 1 {
					t.Errorf("/old asked %d times, want 1", old)
				}
				if follow && (code == 307 || code == 308) {
					checkFollowed(t, res, news, body)
					return
				}
				if res.Outcome != Permanent || res.Status != strconv.Itoa(code) || len(news) != 0 {
					t.Errorf("got %v %q with %d request(s) at /new; want permanent %d and none", res.Outcome, res.Status, len(news), code)
				}
				if !strings.Contains(res.reason(), "redirect not followed") {
					t.Errorf("reason %q does not say the redirect was not followed", res.reason())
				}
			})
		}
	}
}

func checkFollowed(t *testing.T, res Result, news []*recorded, body []byte) {
	t.Helper()
	if res.Outcome != Delivered || res.Status != "200" || len(news) != 1 {
		t.Fatalf("got %v %q with %d request(s) at /new; want delivered 200 and one", res.Outcome, res.Status, len(news))
	}
	got := news[0]
	if got.method != http.MethodPost || !bytes.Equal(got.body, body) {
		t.Errorf("/new got %s %q, want POST %q", got.method, got.body, body)
	}
	if err := verifyWith(t, signSecretA, got.body, got.header); err != nil {
		t.Errorf("signature at /new does not verify: %v", err)
	}
}

// TestRedirectLoopIsPermanent: a 307 chain longer than maxRedirects ends
// as the last 307, permanent, after maxRedirects+1 requests.
func TestRedirectLoopIsPermanent(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	w, err := New(*testWebhook(srv.URL + "/loop"), Options{Stream: "THEHIVE_AUDIT", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	res := w.attempt(t.Context(), "THEHIVE_AUDIT.siem.1", []byte(`{}`), 1)
	if res.Outcome != Permanent || res.Status != "307" || n.Load() != maxRedirects+1 {
		t.Errorf("got %v %q after %d requests; want permanent 307 after %d", res.Outcome, res.Status, n.Load(), maxRedirects+1)
	}
}

func TestTransportSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout config.Timeout
		// responseHeader is 0 when timeout.idle cannot end the wait for
		// the response headers before the attempt's deadline does.
		responseHeader time.Duration
	}{
		{"idle under request", config.Timeout{Connection: 3 * time.Second, Idle: 7 * time.Second, Request: 11 * time.Second}, 7 * time.Second},
		{"idle as request", config.Timeout{Connection: 3 * time.Second, Idle: 11 * time.Second, Request: 11 * time.Second}, 0},
		{"idle over request", config.Timeout{Connection: 3 * time.Second, Idle: 20 * time.Second, Request: 11 * time.Second}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wh := testWebhook("https://127.0.0.1:1/")
			wh.WS.Timeout = tc.timeout
			wh.Delivery.MaxInFlight = 5
			client, err := newClient(wh, nil)
			if err != nil {
				t.Fatal(err)
			}
			tr, ok := client.Transport.(*http.Transport)
			if !ok || tr == http.DefaultTransport {
				t.Fatalf("transport %T is not the webhook's own", client.Transport)
			}
			if client.Timeout != 0 || client == http.DefaultClient {
				t.Errorf("client.Timeout %v: the attempt's context sets the deadline", client.Timeout)
			}
			got := []any{tr.TLSHandshakeTimeout, tr.ResponseHeaderTimeout, tr.IdleConnTimeout, tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, tr.ForceAttemptHTTP2, tr.DisableKeepAlives}
			want := []any{3 * time.Second, tc.responseHeader, tc.timeout.Idle, 5, 5, true, false}
			for i := range got {
				if got[i] != want[i] {
					t.Errorf("setting %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

// With timeout.idle no shorter than timeout.request (the defaults: 30s
// each), the transport has no response-header timeout: the attempt's
// deadline ends the wait for an endpoint that never answers.
func TestRequestTimeoutBoundsAnAttempt(t *testing.T) {
	wh := testWebhook(silentServer(t).URL)
	wh.WS.Timeout.Request, wh.WS.Timeout.Idle = 200*time.Millisecond, 30*time.Second
	w, err := New(*wh, Options{Stream: "S"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	start := time.Now()
	res := w.attempt(context.Background(), "id", []byte(`{}`), 1)
	if res.Outcome != Retry || res.Status != kindTimeout || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v %q (%v) after %v, want a retried timeout after 200ms", res.Outcome, res.Status, res.Err, time.Since(start))
	}
}

func TestConnectionTimeoutBoundsHandshake(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() { // accepts and never speaks
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 10 {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	wh := testWebhook("https://" + ln.Addr().String() + "/")
	wh.WS.Timeout.Connection = 200 * time.Millisecond
	start := time.Now()
	_, _, err = get(t, wh)
	if errorKind(err) != kindTimeout || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v (kind %q) after %v", err, errorKind(err), time.Since(start))
	}
}

// silentServer takes requests and answers none before the test ends (or
// 5 s pass).
func silentServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

func TestIdleTimeoutBoundsResponseHeaders(t *testing.T) {
	wh := testWebhook(silentServer(t).URL)
	wh.WS.Timeout.Idle = 200 * time.Millisecond
	start := time.Now()
	_, _, err := get(t, wh)
	if errorKind(err) != kindTimeout || time.Since(start) > 3*time.Second {
		t.Fatalf("got %v (kind %q) after %v", err, errorKind(err), time.Since(start))
	}
}

func TestConnectionsReusedAndBoundedByMaxInFlight(t *testing.T) {
	var inFlight, peak atomic.Int32
	var conns sync.Map
	srv := startTLSServer(t, "server", func(s *httptest.Server) {
		s.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(20 * time.Millisecond)
		})
		s.Config.ConnState = func(c net.Conn, state http.ConnState) {
			if state == http.StateNew {
				conns.Store(c.RemoteAddr().String(), true)
			}
		}
	})
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.Delivery.MaxInFlight = 2
	client, err := newClient(wh, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := do(t, client, wh.URL); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, wh.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	n := 0
	conns.Range(func(any, any) bool { n++; return true })
	if n > 2 || peak.Load() > 2 || !reused {
		t.Errorf("%d connections, %d requests at once, last reused %v; want ≤ 2, ≤ 2, true", n, peak.Load(), reused)
	}
}
