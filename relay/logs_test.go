package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/echotest"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// Secret values of the log test; each is distinctive so a leak cannot hide.
const (
	secBearer     = "bearer-S3CRET-1001"
	secBasic      = "basic-S3CRET-1002"
	secProxy      = "proxy-S3CRET-1003"
	secJKS        = "jks-S3CRET-1004"
	secP12        = "p12-S3CRET-1005"
	secNATSPass   = "natspass-S3CRET-1006"
	secNATSToken  = "natstoken-S3CRET-1007"
	secFetchKey   = "fetchkey-S3CRET-1008"
	secFetchValue = "fetchsecret-S3CRET-1009"
	secHeader     = "header-S3CRET-1010"
)

// secSigningKey is the signing secret's key bytes; the secret is
// "whsec_" + base64 of them.
var secSigningKey = []byte("signing-S3CRET-1011-0123456789ab")

// syncBuffer is a log destination read while the sidecar still writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestLogsLeakNoSecret runs a config full of secrets through start,
// deliveries over TLS, a permanent failure, exhausted retries through a
// dead proxy, dead letters, an invalid entry, reloads (accepted and
// rejected) and shutdown, all logged at debug level, and finds no secret
// value in the log; it also checks the lines an operator needs are there.
func TestLogsLeakNoSecret(t *testing.T) {
	srv := natsWithPassword(t, "relay", secNATSPass)
	tlsRC := newLogTLSReceiver(t)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"schema mismatch in field details"}`))
	}))
	t.Cleanup(bad.Close)
	stores := writeStores(t, tlsRC.Certificate())
	deadProxy := natstest.FreePort(t)
	hocon := secretConfig(srv.ClientURL(), tlsRC.URL, bad.URL, deadProxy, stores, "")

	logs := &syncBuffer{}
	log := NewLogger(config.Log{Level: "debug", Format: "json"}, logs)
	r := startWith(t, parseConfig(t, hocon), Options{Version: "test", Logger: log})
	waitFor(t, 10*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })

	js := connectWithPassword(t, srv, "relay", secNATSPass)
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1), entry("Update", "case", "a", "a", 2))
	publishTo(t, js, "thehive.audit.case", "not json")
	addr := r.AdminAddr()
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "tls", "outcome", "delivered")
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "basic", "outcome", "deadlettered")
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "proxied", "outcome", "deadlettered")
	waitMetric(t, addr, 1, "auditrelay_entries_invalid_total")

	changed := secretConfig(srv.ClientURL(), tlsRC.URL, bad.URL, deadProxy, stores, "X-Changed = yes")
	changed = strings.Replace(changed, fmt.Sprintf(`user = relay, password = %q`, secNATSPass), fmt.Sprintf(`token = %q`, secNATSToken), 1)
	if err := r.Reload(parseConfig(t, changed)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	broken := strings.Replace(changed, secJKS, "wrong-"+secJKS, 1)
	if err := r.Reload(parseConfig(t, broken)); err == nil {
		t.Fatal("Reload with a wrong store password succeeded")
	}
	r.stop(t)

	got := logs.String()
	for _, want := range []string{
		`"msg":"webhook","webhook":"tls"`, `"trust":"` + tlsRC.Certificate().Subject.String() + `, expires `, `"client":"CN=auditrelay log test client`,
		`"msg":"dead-lettering"`, `schema mismatch in field details`, `"status":"400"`, `"status":"proxy"`,
		`"msg":"invalid entry dead-lettered"`, `"msg":"webhook started by reload","webhook":"basic"`, `"msg":"reload rejected; the running configuration is kept"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Contains(got, `"msg":"webhook stopped by reload","webhook":"tls"`) {
		t.Error("a reload that changed only webhook basic restarted webhook tls")
	}
	assertNoSecret(t, got, secretValues())
}

// secretValues are every secret of the test and the forms it would take on
// the wire (Basic credentials, base64 of the signing key).
func secretValues() []string {
	return []string{secBearer, secBasic, secProxy, secJKS, secP12, secNATSPass, secNATSToken, secFetchKey,
		secFetchValue, secHeader, string(secSigningKey), base64.StdEncoding.EncodeToString(secSigningKey),
		base64.StdEncoding.EncodeToString([]byte("soc:" + secBasic)), url.QueryEscape(secProxy)}
}

// storeFiles are the paths of the test's generated stores.
type storeFiles struct{ trustJKS, clientP12 string }

// secretConfig is the log test's config; extraHeader changes the basic
// webhook (for a reload).
func secretConfig(natsURL, tlsURL, badURL string, deadPort int, s storeFiles, extraHeader string) string {
	signing := "whsec_" + base64.StdEncoding.EncodeToString(secSigningKey)
	return fmt.Sprintf(`
auditrelay {
  nats { url = %q, stream.maxAge = 1h, auth { user = relay, password = %q } }
  admin { listen = "127.0.0.1:0", fetch { key = %q, secret = %q } }
  shutdownTimeout = 5s
}
webhooks {
  tls {
    url = "%s/tls"
    auth { type = bearer, key = %q }
    signing.secret = %q
    headers { "X-Api-Key" = %q }
    ws.ssl {
      debug = true
      trustManager.stores = [ { type = JKS, path = %q, password = %q } ]
      keyManager.stores = [ { type = PKCS12, path = %q, password = %q } ]
    }
  }
  basic {
    url = "%s/basic"
    auth { type = basic, username = soc, password = %q }
    headers { %s }
  }
  proxied {
    url = "https://127.0.0.1:1/proxied"
    format = thin
    ws.proxy { host = "127.0.0.1", port = %d, user = relay, password = %q }
    delivery.retry { maxAttempts = 2, initialBackoff = 50ms, maxBackoff = 100ms }
  }
}
`, natsURL, secNATSPass, secFetchKey, secFetchValue,
		tlsURL, secBearer, signing, secHeader, s.trustJKS, secJKS, s.clientP12, secP12,
		badURL, secBasic, extraHeader, deadPort, secProxy)
}

// natsWithPassword starts a NATS server that requires user and password.
func natsWithPassword(t *testing.T, user, password string) *server.Server {
	t.Helper()
	return natstest.StartWith(t, func(o *server.Options) { o.Username, o.Password = user, password })
}

func connectWithPassword(t *testing.T, srv *server.Server, user, password string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(user, password))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// publishTo publishes bytes that need not be an entry.
func publishTo(t *testing.T, js jetstream.JetStream, subject, data string) {
	t.Helper()
	if _, err := js.Publish(t.Context(), subject, []byte(data)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// newLogTLSReceiver is an HTTPS endpoint answering 200 with httptest's
// certificate.
func newLogTLSReceiver(t *testing.T) *httptest.Server {
	t.Helper()
	rc := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	rc.StartTLS()
	t.Cleanup(rc.Close)
	return rc
}

// writeStores writes a JKS trusting the receiver's certificate and a PKCS12
// client certificate, each with its secret password.
func writeStores(t *testing.T, serverCert *x509.Certificate) storeFiles {
	t.Helper()
	dir := t.TempDir()
	s := storeFiles{trustJKS: filepath.Join(dir, "trust.jks"), clientP12: filepath.Join(dir, "client.p12")}
	ks := keystore.New()
	noErr(t, ks.SetTrustedCertificateEntry("server", keystore.TrustedCertificateEntry{
		CreationTime: time.Now(), Certificate: keystore.Certificate{Type: "X.509", Content: serverCert.Raw},
	}))
	var buf bytes.Buffer
	noErr(t, ks.Store(&buf, []byte(secJKS)))
	noErr(t, os.WriteFile(s.trustJKS, buf.Bytes(), 0o600))
	key, cert := selfSigned(t, "auditrelay log test client")
	p12, err := pkcs12.Modern.Encode(key, cert, nil, secP12)
	noErr(t, err)
	noErr(t, os.WriteFile(s.clientP12, p12, 0o600))
	return s
}

func selfSigned(t *testing.T, cn string) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	noErr(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	noErr(t, err)
	cert, err := x509.ParseCertificate(der)
	noErr(t, err)
	return key, cert
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Secrets the echo endpoint gets back in the request, each distinctive.
const (
	echoPathToken = "pathS3CRETtoken2001abcdef"
	echoQuery     = "query-S3CRET-2002"
	echoURLPass   = "urlpass-S3CRET-2003"
	echoBearer    = "bearer-S3CRET-2004"
	echoHeader    = "header-S3CRET-2005"
	echoBasicPass = "basic-S3CRET-2006"
	echoProxyPass = "proxy-S3CRET-2007"
)

// echoSecrets are the echo test's secrets and the forms they travel in.
func echoSecrets() []string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return []string{"/services/T0ECHO2001/B0ECHO2002/" + echoPathToken, echoPathToken, "T0ECHO2001", "B0ECHO2002",
		"/hooks/teams-tenant", echoQuery, echoURLPass, b64("relay:" + echoURLPass), echoBearer, echoHeader,
		b64(echoHeader), echoBasicPass, b64("soc:" + echoBasicPass), echoProxyPass}
}

// TestEchoedRequestLeaksNoSecret: two webhooks whose URLs carry secrets in
// userinfo, path and query, with bearer and Basic auth, a configured header
// and a proxy password (for an address the URL bypasses), point at an
// endpoint that echoes every request back in its 400. None of the secrets
// appears in the debug log, the dead letters' headers, /metrics, `check`'s
// printed config or the start-up description; the reasons show the
// echoed path and query as ****.
func TestEchoedRequestLeaksNoSecret(t *testing.T) {
	srv, js := natsServer(t)
	echo := echotest.Server(t, 0, 40)
	withUser := strings.Replace(echo.URL, "http://", "http://relay:"+echoURLPass+"@", 1)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks {
  slack {
    url = "%s/services/T0ECHO2001/B0ECHO2002/%s?token=%s"
    auth { type = bearer, key = %q }
    headers { "X-Api-Key" = %q }
    ws.proxy { host = "127.0.0.1", port = 9, user = px, password = %q, nonProxyHosts = ["127.0.0.1"] }
  }
  teams {
    url = "%s/hooks/teams-tenant"
    auth { type = basic, username = soc, password = %q }
  }
}`, withUser, echoPathToken, echoQuery, echoBearer, echoHeader, echoProxyPass, echo.URL, echoBasicPass)))
	logs := &syncBuffer{}
	r := startWith(t, cfg, Options{Version: "test", Logger: NewLogger(config.Log{Level: "debug", Format: "json"}, logs)})
	waitFor(t, 10*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)

	var shown strings.Builder
	for _, name := range []string{"slack", "teams"} {
		h := readDeadLetters(t, js, "auditrelay.deadletter."+name, 1)[e]
		if h == nil {
			t.Fatalf("%s: not dead-lettered", name)
		}
		reason := h.Get(audit.HeaderReason)
		if !strings.HasPrefix(reason, "HTTP 400: path=**** ") {
			t.Errorf("%s: reason %q, want the echoed path scrubbed", name, reason)
		}
		for _, k := range []string{audit.HeaderWebhook, audit.HeaderReason, audit.HeaderAttempts, audit.HeaderLastStatus, audit.HeaderStreamSeq, audit.HeaderStreamTime} {
			fmt.Fprintf(&shown, "%s: %s\n", k, h.Get(k))
		}
	}
	shown.Write(scrapeMetrics(t, r.AdminAddr()).raw)
	r.stop(t)
	shown.WriteString(logs.String())
	noErr(t, cfg.Print(&shown)) // check's description: cmd/auditrelay.TestDescribe, TestCommandsShowNoSecret
	text := shown.String()
	for _, want := range []string{`"url":"` + config.RedactURL(echo.URL) + `"`, `query=****`, `X-Api-Key: ****`, `Authorization: Bearer ****`, `Authorization: Basic ****`} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %s", want)
		}
	}
	assertNoSecret(t, text, echoSecrets())
}

// assertNoSecret fails for each secret value found in text.
func assertNoSecret(t *testing.T, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q appears in:\n%s", s, text)
		}
	}
}
