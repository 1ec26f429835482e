package sink

import (
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/internal/proxytest"
)

// TestHTTPProxyChallenge: a proxy that challenges a request without
// credentials (407, Proxy-Authenticate: Basic) as squid does. The webhook's
// client sends its Basic credentials with the first CONNECT, unasked, so it
// is never challenged; without credentials it gets the 407 as a
// *proxyError naming the status.
func TestHTTPProxyChallenge(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret"})
	auth := proxytest.BasicAuth("alice", "s3cret")

	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "", "")
	_, _, err := get(t, wh)
	var pe *proxyError
	if !errors.As(err, &pe) || pe.Status != "407 Proxy Authentication Required" {
		t.Fatalf("without credentials: %v, want a proxyError with 407", err)
	}

	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
	if body, _, err := get(t, wh); err != nil || body != "-" {
		t.Fatalf("with credentials: %q, %v", body, err)
	}
	want := []proxytest.Request{{Method: "CONNECT", Target: hostOf(srv.URL)}, {Method: "CONNECT", Target: hostOf(srv.URL), Auth: auth}}
	if got := proxy.Requests(); !slices.Equal(got, want) {
		t.Errorf("proxy saw %+v, want %+v", got, want)
	}
}

// TestHTTPProxyChallengeFirstAnswered: a proxy that challenges before it
// takes credentials (the first request of each connection gets 407 with a
// Basic challenge whatever it carries). The webhook's client answers the
// challenge with its credentials, once, on the same connection: through
// CONNECT to an http and to an https proxy, from the proxy block or from
// HTTPS_PROXY, and when a proxy forwards plain http (the request, body
// included, sent again).
func TestHTTPProxyChallengeFirstAnswered(t *testing.T) {
	auth := proxytest.BasicAuth("alice", "s3cret")
	srv := startTLSServer(t, "server", nil)
	proxyCert := serverCert(t, "server")
	tunnel := []proxytest.Request{{Method: "CONNECT", Target: hostOf(srv.URL), Auth: auth}, {Method: "CONNECT", Target: hostOf(srv.URL), Auth: auth}}
	for _, tc := range []struct {
		name     string
		tls      *tls.Certificate
		protocol string
		env      bool
	}{
		{"http proxy", nil, "http", false},
		{"https proxy", &proxyCert, "https", false},
		{"HTTPS_PROXY", nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true, TLS: tc.tls, Route: siemTestToLoopback})
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
			if tc.env {
				// httpproxy never proxies loopback: reach the endpoint as siem.test.
				t.Setenv("HTTPS_PROXY", "http://alice:s3cret@"+proxy.Addr())
				t.Setenv("HTTP_PROXY", "")
				t.Setenv("NO_PROXY", "")
				wh.URL = "https://siem.test:" + portOf(srv.URL)
				wh.WS.UseProxyProperties = true
			} else {
				wh.WS.Proxy = proxyBlock(t, proxy.Addr(), tc.protocol, "alice", "s3cret")
			}
			if body, _, err := get(t, wh); err != nil || body != "-" {
				t.Fatalf("got %q, %v; want through the challenge", body, err)
			}
			want := tunnel
			if tc.env {
				want = []proxytest.Request{{Method: "CONNECT", Target: "siem.test:" + portOf(srv.URL), Auth: auth}, {Method: "CONNECT", Target: "siem.test:" + portOf(srv.URL), Auth: auth}}
			}
			if got := proxy.Requests(); !slices.Equal(got, want) {
				t.Errorf("proxy saw %+v, want %+v (challenged, then answered)", got, want)
			}
		})
	}
	t.Run("wrong password: answered once, then a proxyError", func(t *testing.T) {
		proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true})
		wh := testWebhook(srv.URL)
		wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
		wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "wrong")
		_, _, err := get(t, wh)
		var pe *proxyError
		if !errors.As(err, &pe) || pe.Status != "407 Proxy Authentication Required" || errorKind(err) != kindProxy {
			t.Fatalf("%v (kind %q), want a proxyError with 407, kind proxy", err, errorKind(err))
		}
		if n := len(proxy.Requests()); n != 2 {
			t.Errorf("proxy saw %d CONNECTs, want 2 (the first, the one answer)", n)
		}
	})
	t.Run("plain http", func(t *testing.T) {
		proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true})
		var got []string
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got = append(got, string(b))
			w.Write([]byte("plain"))
		}))
		t.Cleanup(plain.Close)
		wh := testWebhook(plain.URL + "/hook")
		wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
		client, err := newClient(wh, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		req, err := http.NewRequest(http.MethodPost, wh.URL, strings.NewReader(`{"entry":1}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "plain" {
			t.Fatalf("got %s %q; want through the challenge", resp.Status, body)
		}
		if len(got) != 1 || got[0] != `{"entry":1}` {
			t.Errorf("the endpoint got %q, want the body once", got)
		}
		want := []proxytest.Request{{Method: "POST", Target: plain.URL + "/hook", Auth: auth}, {Method: "POST", Target: plain.URL + "/hook", Auth: auth}}
		if got := proxy.Requests(); !slices.Equal(got, want) {
			t.Errorf("proxy saw %+v, want %+v", got, want)
		}
	})
}

func portOf(rawURL string) string {
	u, _ := url.Parse(rawURL)
	return u.Port()
}

// TestHTTP2ThroughAnsweredChallenge: the tunnel the client opens itself
// still negotiates HTTP/2 with an endpoint that offers it, as net/http's
// own tunnels do.
func TestHTTP2ThroughAnsweredChallenge(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverCert(t, "server")}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true})
	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
	if body, _, err := get(t, wh); err != nil || body != "HTTP/2.0" {
		t.Fatalf("got %q, %v; want HTTP/2.0", body, err)
	}
}
