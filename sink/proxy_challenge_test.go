package sink

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/auditrelay/auditrelay/internal/proxytest"
)

// TestHTTPProxyChallenge: a proxy that challenges a request without
// credentials (407, Proxy-Authenticate: Basic) as squid does. The webhook's
// client sends its Basic credentials with the first CONNECT, unasked, so it
// is never challenged; without credentials it gets the 407 as a
// *ProxyError naming the status.
func TestHTTPProxyChallenge(t *testing.T) {
	srv := startTLSServer(t, "server", nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret"})
	auth := proxytest.BasicAuth("alice", "s3cret")

	wh := testWebhook(srv.URL)
	wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
	wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "", "")
	_, _, err := get(t, wh)
	var pe *ProxyError
	if !errors.As(err, &pe) || pe.Status != "407 Proxy Authentication Required" {
		t.Fatalf("without credentials: %v, want a ProxyError with 407", err)
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

// TestHTTPProxyChallengeFirstNotAnswered pins what the webhook's client
// does with a proxy that challenges before it takes credentials (the first
// request of each connection gets 407 whatever it carries): net/http sends
// the Basic credentials unasked and does not answer a challenge, so the
// attempt fails. Through CONNECT (https) that is a *ProxyError with the
// 407, an error of kind "proxy", retried like any proxy failure, on a new
// connection that is challenged again; forwarding plain http, the 407
// comes back as the response. Every request carried the credentials.
// (A Basic proxy that takes credentials sent unasked, as squid does, is
// TestHTTPProxyChallenge.)
func TestHTTPProxyChallengeFirstNotAnswered(t *testing.T) {
	auth := proxytest.BasicAuth("alice", "s3cret")
	t.Run("CONNECT", func(t *testing.T) {
		proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true})
		srv := startTLSServer(t, "server", nil)
		wh := testWebhook(srv.URL)
		wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", "ca.pem")
		wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
		client, err := NewClient(wh, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		for attempt := 1; attempt <= 2; attempt++ {
			_, _, err := do(t, client, wh.URL)
			var pe *ProxyError
			if !errors.As(err, &pe) || pe.Status != "407 Proxy Authentication Required" || ErrorKind(err) != KindProxy {
				t.Fatalf("attempt %d: %v (kind %q), want a ProxyError with 407, kind proxy", attempt, err, ErrorKind(err))
			}
		}
		want := []proxytest.Request{{Method: "CONNECT", Target: hostOf(srv.URL), Auth: auth}, {Method: "CONNECT", Target: hostOf(srv.URL), Auth: auth}}
		if got := proxy.Requests(); !slices.Equal(got, want) {
			t.Errorf("proxy saw %+v, want %+v", got, want)
		}
	})
	t.Run("plain http", func(t *testing.T) {
		proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "s3cret", Challenge: true})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("plain")) }))
		t.Cleanup(srv.Close)
		wh := testWebhook(srv.URL + "/hook")
		wh.WS.Proxy = proxyBlock(t, proxy.Addr(), "http", "alice", "s3cret")
		_, resp, err := get(t, wh)
		if err != nil || resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="proxytest"` {
			t.Fatalf("got %v, %v; want the proxy's 407 challenge as the response", resp, err)
		}
		want := []proxytest.Request{{Method: "GET", Target: srv.URL + "/hook", Auth: auth}}
		if got := proxy.Requests(); !slices.Equal(got, want) {
			t.Errorf("proxy saw %+v, want %+v", got, want)
		}
	})
}
