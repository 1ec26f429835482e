package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/proxytest"
	"github.com/auditrelay/auditrelay/internal/tlstest"
)

// tlsStorePass is the password of every store in tlsconf/testdata.
const tlsStorePass = "changeit"

// tlsTestdata is the absolute path of a file of tlsconf/testdata.
func tlsTestdata(t *testing.T, name string) string { return tlstest.Path(t, name) }

// storeHOCON is one store entry as a TheHive admin writes it.
func storeHOCON(t *testing.T, typ, file string) string {
	return fmt.Sprintf(`{ type = %q, path = %q, password = %q }`, typ, tlsTestdata(t, file), tlsStorePass)
}

// clientCNs records the client certificates an mTLS receiver verified.
type clientCNs struct {
	mu  sync.Mutex
	cns []string
}

func (c *clientCNs) add(cs tls.ConnectionState) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(cs.PeerCertificates) > 0 {
		c.cns = append(c.cns, cs.PeerCertificates[0].Subject.CommonName)
	}
	return nil
}

func (c *clientCNs) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.cns...)
}

// newTLSReceiver is newReceiver served over TLS with tlsconf/testdata's server
// certificate (127.0.0.1, ::1, localhost); with mutual, it requires a
// client certificate of the test CA and records its CN.
func newTLSReceiver(t *testing.T, mutual bool) (*receiver, *clientCNs) {
	t.Helper()
	rc := newReceiver(t, nil)
	rc.Server.Close() // only its recording handler is wanted, over TLS
	srv := httptest.NewUnstartedServer(rc.Config.Handler)
	pair, err := tls.LoadX509KeyPair(tlsTestdata(t, "server.pem"), tlsTestdata(t, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cns := &clientCNs{}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	if mutual {
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, testCA(t)
		srv.TLS.VerifyConnection = cns.add
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	rc.Server = srv
	return rc, cns
}

func testCA(t *testing.T) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(tlsTestdata(t, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	return pool
}

// hostPort splits a listener address for a HOCON proxy block.
func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return host, n
}

// metricValue reads one series from GET /metrics on the admin listener:
// the sample of name whose labels include every one of labels
// (`code="tls"`), 0 when there is none.
func metricValue(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, name+"{") && hasAll(line, labels) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}

func hasAll(line string, labels []string) bool {
	for _, l := range labels {
		if !strings.Contains(line[:strings.IndexByte(line, '}')], l) {
			return false
		}
	}
	return true
}

// tlsEntries are n entries, a few sharing a root.
func tlsEntries(n int) []string {
	var out []string
	for i := range n {
		out = append(out, entry("Creation", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%10), i))
	}
	return out
}

// TestTrustStoresClientCertAndProxiesEndToEnd: webhooks configured as a
// TheHive admin writes them, trusting via JKS, PKCS12 and inline PEM, one
// with a client certificate, one through an HTTP CONNECT proxy with Basic
// auth, one through SOCKS5, and one with the wrong trust store. Every entry
// reaches every good webhook byte for byte, without waiting on the failing
// one, whose entries are dead-lettered as "tls" after maxAttempts.
func TestTrustStoresClientCertAndProxiesEndToEnd(t *testing.T) {
	srv, js := natsServer(t)
	rc, _ := newTLSReceiver(t, false)
	mrc, cns := newTLSReceiver(t, true)
	httpP := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "pr0xy-pa55"})
	socksP := proxytest.StartSOCKS5(t, proxytest.Options{User: "bob", Password: "s0cks-pa55"})
	caPEM, err := os.ReadFile(tlsTestdata(t, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	hh, hp := hostPort(t, httpP.Addr())
	sh, sp := hostPort(t, socksP.Addr())
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks {
  jks { url = "%[1]s/jks", ws { ssl { trustManager { stores = [ %[3]s ] } } } }
  pkcs12 { url = "%[1]s/pkcs12", ws { ssl { trustManager { stores = [ %[4]s ] } } } }
  pem {
    url = "%[1]s/pem"
    ws { ssl { trustManager { stores = [ { type = "PEM", data = """%[5]s""" } ] } } }
  }
  mtls {
    url = "%[2]s/mtls"
    ws { ssl { trustManager { stores = [ %[3]s ] }, keyManager { stores = [ %[6]s ] } } }
  }
  connect {
    url = "%[1]s/connect"
    ws {
      proxy { host = "%[7]s", port = %[8]d, protocol = "http", user = "alice", password = "pr0xy-pa55", nonProxyHosts = ["*.internal.example"] }
      ssl { trustManager { stores = [ %[3]s ] } }
    }
  }
  socks {
    url = "%[1]s/socks"
    ws {
      proxy { host = "%[9]s", port = %[10]d, protocol = "socks5", user = "bob", password = "s0cks-pa55" }
      ssl { trustManager { stores = [ %[4]s ] } }
    }
  }
  wrong {
    url = "%[1]s/wrong"
    ws { ssl { trustManager { stores = [ %[11]s ] } } }
    delivery.retry { maxAttempts = 2, initialBackoff = 10s, maxBackoff = 10s }
  }
}`, rc.URL, mrc.URL, storeHOCON(t, "JKS", "truststore.jks"), storeHOCON(t, "PKCS12", "truststore.p12"), caPEM,
		storeHOCON(t, "PKCS12", "client.p12"), hh, hp, sh, sp, storeHOCON(t, "JKS", "wrong-ca.jks"))))
	s := startRelay(t, cfg)
	want := tlsEntries(20)
	publish(t, js, "thehive.audit.case", want...)

	good := map[string]*receiver{"/jks": rc, "/pkcs12": rc, "/pem": rc, "/mtls": mrc, "/connect": rc, "/socks": rc}
	waitFor(t, 15*time.Second, "every entry at every good webhook", func() bool {
		for path, r := range good {
			if len(r.bodies(path)) < len(want) {
				return false
			}
		}
		return true
	})
	// The wrong webhook's first dead letter needs a 10s backoff, far more
	// than the good ones need on a loaded machine: they did not wait for it.
	if n := metricValue(t, s.AdminAddr(), "auditrelay_deliveries_total", `webhook="wrong"`, `outcome="deadlettered"`); n != 0 {
		t.Errorf("the good webhooks finished only after %v dead letters of the failing one", n)
	}
	for path, r := range good {
		checkSameEntriesInKeyOrder(t, path, r.bodies(path), want)
	}
	checkProxiesAndClientCert(t, httpP, socksP, cns, rc.URL)
	checkWrongStoreDeadLettered(t, s, js, want, rc)
}

// checkProxiesAndClientCert: each proxy tunnelled, with its credentials,
// to the receiver and nowhere else; the mutual TLS receiver saw client.p12.
func checkProxiesAndClientCert(t *testing.T, httpP *proxytest.HTTP, socksP *proxytest.SOCKS5, cns *clientCNs, target string) {
	t.Helper()
	hostport := strings.TrimPrefix(target, "https://")
	for _, p := range []struct {
		name string
		seen []proxytest.Request
		want proxytest.Request
	}{
		{"CONNECT", httpP.Requests(), proxytest.Request{Method: "CONNECT", Target: hostport, Auth: proxytest.BasicAuth("alice", "pr0xy-pa55")}},
		{"SOCKS5", socksP.Requests(), proxytest.Request{Method: "CONNECT", Target: hostport, Auth: "bob:s0cks-pa55"}},
	} {
		if len(p.seen) == 0 {
			t.Errorf("%s proxy saw no traffic", p.name)
		}
		for _, r := range p.seen {
			if r != p.want {
				t.Errorf("%s proxy saw %+v, want only %+v", p.name, r, p.want)
			}
		}
	}
	got := cns.list()
	if len(got) == 0 {
		t.Error("the mutual TLS receiver verified no client certificate")
	}
	for _, cn := range got {
		if cn != "auditrelay test client" {
			t.Errorf("client certificate CN %q, want the one of client.p12", cn)
		}
	}
}

// checkWrongStoreDeadLettered: every entry of the wrong-store webhook was
// tried maxAttempts times, each a "tls" failure, then dead-lettered with
// Auditrelay-Last-Status tls.
func checkWrongStoreDeadLettered(t *testing.T, s *started, js jetstream.JetStream, want []string, rc *receiver) {
	t.Helper()
	attempts := float64(2 * len(want))
	waitFor(t, 40*time.Second, "2 tls attempts per entry of the wrong webhook", func() bool {
		return metricValue(t, s.AdminAddr(), "auditrelay_delivery_attempts_total", `webhook="wrong"`, `code="tls"`) >= attempts
	})
	if n := metricValue(t, s.AdminAddr(), "auditrelay_delivery_attempts_total", `webhook="jks"`, `code="tls"`); n != 0 {
		t.Errorf("the good jks webhook had %v tls failures", n)
	}
	got := readDeadLetters(t, js, "auditrelay.deadletter.wrong", len(want))
	for _, e := range want {
		h, ok := got[e]
		if !ok {
			t.Errorf("entry not dead-lettered (or not byte for byte): %s", e)
			continue
		}
		if h.Get(audit.HeaderLastStatus) != "tls" || h.Get(audit.HeaderAttempts) != "2" || h.Get(audit.HeaderWebhook) != "wrong" {
			t.Errorf("dead letter headers: last status %q, attempts %q, webhook %q; want tls, 2, wrong",
				h.Get(audit.HeaderLastStatus), h.Get(audit.HeaderAttempts), h.Get(audit.HeaderWebhook))
		}
	}
	if n := len(rc.bodies("/wrong")); n != 0 {
		t.Errorf("%d requests reached the receiver through a handshake that should fail", n)
	}
	if n := metricValue(t, s.AdminAddr(), "auditrelay_delivery_attempts_total", `webhook="wrong"`, `code="tls"`); n != attempts {
		t.Errorf("wrong webhook: %v tls attempts, want %v (maxAttempts 2 per entry)", n, attempts)
	}
}

// TestWSLayeringTrustAndProxyInherited (SPEC §2.1): a `webhooks.ws` block
// gives every webhook its trust store and the application's `play.ws` its
// proxy, key by key: a webhook setting only its User-Agent keeps both, one
// with its own (wrong) trust store keeps the proxy yet fails as "tls".
func TestWSLayeringTrustAndProxyInherited(t *testing.T) {
	srv, js := natsServer(t)
	rc, _ := newTLSReceiver(t, false)
	crc, _ := newTLSReceiver(t, false) // c's own, so its tunnel is told apart
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "pr0xy-pa55"})
	host, port := hostPort(t, proxy.Addr())
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
play.ws {
  useragent = "play/1"
  proxy { host = "%[2]s", port = %[3]d, protocol = "http", user = "alice", password = "pr0xy-pa55" }
}
webhooks {
  ws { ssl { trustManager { stores = [ %[4]s ] } } }
  a { url = "%[1]s/a" }
  b { url = "%[1]s/b", ws { useragent = "b/1" } }
  c {
    url = "%[6]s/c"
    ws { ssl { trustManager { stores = [ { type = "PEM", path = %[5]q } ] } } }
    delivery.retry { maxAttempts = 1 }
  }
}`, rc.URL, host, port, storeHOCON(t, "JKS", "truststore.jks"), tlsTestdata(t, "wrong-ca.pem"), crc.URL)))
	s := startRelay(t, cfg)
	want := tlsEntries(5)
	publish(t, js, "thehive.audit.case", want...)
	waitFor(t, 15*time.Second, "a and b", func() bool {
		return len(rc.bodies("/a")) == len(want) && len(rc.bodies("/b")) == len(want)
	})
	checkSameEntriesInKeyOrder(t, "/a", rc.bodies("/a"), want)
	checkSameEntriesInKeyOrder(t, "/b", rc.bodies("/b"), want)
	for _, r := range rc.requests() {
		if ua := r.header.Get("User-Agent"); ua != map[string]string{"/a": "play/1", "/b": "b/1"}[r.path] {
			t.Errorf("%s: User-Agent %q", r.path, ua)
		}
	}
	readDeadLetters(t, js, "auditrelay.deadletter.c", len(want))
	if n := metricValue(t, s.AdminAddr(), "auditrelay_delivery_attempts_total", `webhook="c"`, `code="tls"`); n != float64(len(want)) {
		t.Errorf("c: %v tls attempts, want %d", n, len(want))
	}
	// c's handshake failed inside the inherited proxy's tunnel, not around it.
	checkTunnels(t, proxy.Requests(), proxytest.BasicAuth("alice", "pr0xy-pa55"), rc.URL, crc.URL)
}

// checkTunnels checks that the proxy tunnelled, always with the
// Proxy-Authorization auth, to every one of targets and to nothing else.
func checkTunnels(t *testing.T, seen []proxytest.Request, auth string, targets ...string) {
	t.Helper()
	count := map[string]int{}
	for _, r := range seen {
		if r.Auth != auth {
			t.Errorf("proxy got %s %s with Proxy-Authorization %q, want %q", r.Method, r.Target, r.Auth, auth)
		}
		count[r.Method+" "+r.Target]++
	}
	for _, target := range targets {
		c := "CONNECT " + strings.TrimPrefix(target, "https://")
		if count[c] == 0 {
			t.Errorf("proxy never tunnelled to %s: saw %q", target, seen)
		}
		delete(count, c)
	}
	if len(count) > 0 {
		t.Errorf("proxy tunnelled elsewhere too: %v", count)
	}
}

// TestReloadWithBadStoreRejected: a SIGHUP reload of a file whose store
// no longer reads (wrong password, expired client certificate) is
// rejected with the webhook, key path and file named, counted as a
// failure, and the running webhooks keep delivering.
func TestReloadWithBadStoreRejected(t *testing.T) {
	srv, js := natsServer(t)
	rc, _ := newTLSReceiver(t, true)
	file := filepath.Join(t.TempDir(), "application.conf")
	write := func(trust, key string) *config.Config {
		t.Helper()
		webhooks := fmt.Sprintf(`webhooks { siem { url = "%s/siem", ws.ssl { trustManager.stores = [ %s ], keyManager.stores = [ %s ] } } }`,
			rc.URL, trust, key)
		if err := os.WriteFile(file, []byte(testConfig(srv, webhooks)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(file)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return cfg
	}
	trust, key := storeHOCON(t, "JKS", "truststore.jks"), storeHOCON(t, "PKCS12", "client.p12")
	s := startRelay(t, write(trust, key))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "first entry", func() bool { return len(rc.bodies("/siem")) == 1 })

	bad := []struct{ trust, key, store, cause string }{
		{strings.Replace(trust, tlsStorePass, "n0t-the-pa55", 1), key,
			"webhooks.siem.ws.ssl.trustManager.stores[0] (" + tlsTestdata(t, "truststore.jks") + ")", "wrong password"},
		{trust, storeHOCON(t, "PKCS12", "expired-client.p12"),
			"webhooks.siem.ws.ssl.keyManager.stores[0] (" + tlsTestdata(t, "expired-client.p12") + ")", "expired"},
	}
	for i, b := range bad {
		err := s.Reload(write(b.trust, b.key))
		if err == nil {
			t.Fatalf("reload %d with a bad store was accepted", i)
		}
		for _, part := range []string{`webhook "siem"`, b.store, b.cause} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("reload error %q does not name %q", err, part)
			}
		}
		if strings.Contains(err.Error(), "n0t-the-pa55") {
			t.Errorf("reload error shows the password: %v", err)
		}
		if n := metricValue(t, s.AdminAddr(), "auditrelay_config_reloads_total", `result="failure"`); n != float64(i+1) {
			t.Errorf("reloads_total{result=failure} = %v, want %d", n, i+1)
		}
	}
	publish(t, js, "thehive.audit.case", entry("Update", "case", "a", "a", 2))
	waitFor(t, 10*time.Second, "the running webhook still delivers", func() bool { return len(rc.bodies("/siem")) == 2 })
	if n := metricValue(t, s.AdminAddr(), "auditrelay_config_reloads_total", `result="success"`); n != 0 {
		t.Errorf("reloads_total{result=success} = %v, want 0", n)
	}
}
