package sink

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/proxytest"
)

func proxyBlock(t *testing.T, addr, protocol, user, password string) config.Proxy {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return config.Proxy{Host: host, Port: p, Protocol: config.ProxyProtocol(protocol), User: user, Password: config.Secret(password)}
}

func hostOf(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Host
}

func TestHTTPProxyCONNECTWithBasicAuth(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret"})
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
	if _, _, err := get(t, wh); err != nil {
		t.Fatal(err)
	}
	want := proxytest.Request{Method: "CONNECT", Target: hostOf(srv.URL), Auth: proxytest.BasicAuth("alice", "s3cret")}
	if got := proxy.Requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("proxy saw %+v, want [%+v]", got, want)
	}
}

func TestHTTPProxyForwardsPlainHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("plain"))
	}))
	t.Cleanup(srv.Close)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret"})
	wh := testWebhook(srv.URL + "/hook")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
	body, _, err := get(t, wh)
	if err != nil || body != "plain" {
		t.Fatalf("got %q, %v", body, err)
	}
	want := proxytest.Request{Method: "GET", Target: srv.URL + "/hook", Auth: proxytest.BasicAuth("alice", "s3cret")}
	if got := proxy.Requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("proxy saw %+v, want [%+v]", got, want)
	}
}

// TestHTTPSProxyVerifiedWithWebhookTrustStores proves that net/http verifies
// an https proxy with the transport's TLSClientConfig, i.e. the webhook's
// trust stores: the target is plain http, so only the proxy's TLS is at stake.
func TestHTTPSProxyVerifiedWithWebhookTrustStores(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("behind https proxy"))
	}))
	t.Cleanup(srv.Close)
	cert := serverCert(t, "server")
	proxy := proxytest.StartHTTP(t, proxytest.Options{TLS: &cert})
	for _, tt := range []struct {
		trust string
		ok    bool
	}{{"ca.pem", true}, {"wrong-ca.pem", false}} {
		t.Run(tt.trust, func(t *testing.T) {
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", tt.trust)
			wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "https", "", "")
			body, _, err := get(t, wh)
			if tt.ok && (err != nil || body != "behind https proxy") {
				t.Fatalf("got %q, %v", body, err)
			}
			if !tt.ok && errorKind(err) != kindProxy {
				t.Fatalf("want the proxy's certificate refused, got %v", err)
			}
		})
	}
	if got := proxy.Requests(); len(got) != 1 {
		t.Errorf("proxy forwarded %+v, want exactly the trusted request", got)
	}
}

func TestHTTPSProxyTunnelsHTTPS(t *testing.T) {
	srv := startTLSServer(t, "server", requireClientCert(t))
	cert := serverCert(t, "server")
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "bob", Password: "pw", TLS: &cert})
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "JKS", "truststore.jks")
	wh.WS.SSL.KeyManager.Stores = []config.Store{keyStore(t, "PKCS12", "client.p12")}
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "https", "bob", "pw")
	body, _, err := get(t, wh)
	if err != nil || body != "auditrelay test client" {
		t.Fatalf("got %q, %v", body, err)
	}
	if got := proxy.Requests(); len(got) != 1 || got[0].Method != "CONNECT" || got[0].Auth != proxytest.BasicAuth("bob", "pw") {
		t.Fatalf("proxy saw %+v", got)
	}
}

func TestSOCKS5ProxyWithUserPassword(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartSOCKS5(t, proxytest.Options{User: "carol", Password: "pw5"})
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "socks5", "carol", "pw5")
	if _, _, err := get(t, wh); err != nil {
		t.Fatal(err)
	}
	want := proxytest.Request{Method: "CONNECT", Target: hostOf(srv.URL), Auth: "carol:pw5"}
	if got := proxy.Requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("proxy saw %+v, want [%+v]", got, want)
	}
}

func TestNonProxyHostsReachedDirectly(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{})
	for _, pattern := range []string{"127.0.0.1", "127.0.*", "LOCALHOST"} {
		t.Run(pattern, func(t *testing.T) {
			url := srv.URL
			if pattern == "LOCALHOST" {
				url = strings.Replace(url, "127.0.0.1", "localhost", 1)
			}
			wh := testWebhook(url)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
			wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "", "")
			wh.WS.Proxy.NonProxyHosts = []string{"*.example.org", pattern}
			if _, _, err := get(t, wh); err != nil {
				t.Fatal(err)
			}
		})
	}
	if got := proxy.Requests(); len(got) != 0 {
		t.Errorf("proxy saw %+v, want nothing", got)
	}
}

func TestBypass(t *testing.T) {
	patterns := []string{"*.example.org", "intranet", "10.1.*"}
	tests := map[string]bool{
		"siem.example.org": true, "a.b.EXAMPLE.org": true, "example.org": false, "badexample.org": false,
		"intranet": true, "intranet.corp": false, "10.1.2.3": true, "10.10.2.3": false, "siem.test": false,
	}
	for host, want := range tests {
		if got := bypass(patterns, host); got != want {
			t.Errorf("bypass(%q) = %v, want %v", host, got, want)
		}
	}
}

// siemTestToLoopback is the Route of a test proxy that sends siem.test (and
// localhost) to 127.0.0.1: env-proxy tests need a real-looking name, as
// httpproxy never proxies localhost or loopback targets.
func siemTestToLoopback(hostport string) string {
	host, port, err := net.SplitHostPort(hostport)
	if err == nil && (host == "siem.test" || host == "localhost") {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return hostport
}

// TestProxyFromEnvironment uses siem.test, which the test proxy maps to the
// loopback server: httpproxy never proxies localhost or loopback targets.
func TestProxyFromEnvironment(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{Route: siemTestToLoopback})
	t.Setenv("HTTPS_PROXY", proxy.URL())
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("NO_PROXY", "*.example.org,intranet")
	_, port, _ := net.SplitHostPort(hostOf(srv.URL))
	target := "https://siem.test:" + port + "/"
	wh := testWebhook(target)
	wh.WS.UseProxyProperties = true
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	if _, _, err := get(t, wh); err != nil {
		t.Fatal(err)
	}
	want := proxytest.Request{Method: "CONNECT", Target: "siem.test:" + port}
	if got := proxy.Requests(); len(got) != 1 || got[0] != want {
		t.Fatalf("proxy saw %+v, want [%+v]", got, want)
	}
}

func TestProxyChoice(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://env-proxy.corp:3128")
	t.Setenv("HTTP_PROXY", "")
	t.Setenv("NO_PROXY", "intranet")
	block := config.Proxy{Host: "proxy.corp", Port: 8080, Protocol: config.ProxyHTTP, User: "u", Password: "hunter2", NonProxyHosts: []string{"*.example.org"}}
	tests := []struct {
		name     string
		proxy    config.Proxy
		useProps bool
		target   string
		want     string
	}{
		{"block wins over environment", block, true, "https://siem.test/", "http://proxy.corp:8080"},
		{"block, nonProxyHosts", block, true, "https://siem.example.org/", "direct"},
		{"environment", config.Proxy{}, true, "https://siem.test/", "http://env-proxy.corp:3128"},
		{"environment NO_PROXY", config.Proxy{}, true, "https://intranet/", "direct"},
		{"useProxyProperties false", config.Proxy{}, false, "https://siem.test/", "direct"},
		{"socks5 proxy", config.Proxy{Host: "10.0.0.1", Port: 1080, Protocol: config.ProxySOCKS5}, false, "https://siem.test/", "socks5://10.0.0.1:1080"},
		{"https proxy", config.Proxy{Host: "p", Port: 3129, Protocol: config.ProxyHTTPS}, false, "https://siem.test/", "https://p:3129"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := testWebhook(tt.target)
			wh.WS.Proxy, wh.WS.UseProxyProperties = tt.proxy, tt.useProps
			target, _ := url.Parse(tt.target)
			if got := DescribeProxy(wh, target); got != tt.want {
				t.Errorf("DescribeProxy = %q, want %q", got, tt.want)
			}
		})
	}
	wh := testWebhook("https://siem.test/")
	wh.WS.Proxy = block
	u, err := proxyFor(wh)(&http.Request{URL: &url.URL{Scheme: "https", Host: "siem.test"}})
	if err != nil || u.User.String() != "u:hunter2" {
		t.Errorf("proxy URL %v, %v: want the credentials for net/http", u, err)
	}
}
