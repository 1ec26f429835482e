package proxytest

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
)

// get fetches target through proxyURL and returns the status and body.
func get(t *testing.T, proxyURL, target string) (int, string, error) {
	t.Helper()
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{Proxy: http.ProxyURL(u)}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(target)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func startTarget(t *testing.T) (*httptest.Server, string) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "target")
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return srv, port
}

// toLoopback sends siem.test to 127.0.0.1 and refuses refused.test.
func toLoopback(hostport string) string {
	host, port, _ := net.SplitHostPort(hostport)
	switch host {
	case "siem.test":
		return net.JoinHostPort("127.0.0.1", port)
	case "refused.test":
		return ""
	}
	return hostport
}

func TestHTTP(t *testing.T) {
	srv, port := startTarget(t)
	p := StartHTTP(t, Options{User: "alice", Password: "pw", Route: toLoopback})
	withAuth := "http://alice:pw@" + p.Addr()
	tests := []struct {
		name, proxy, target string
		status              int
		want                Request
	}{
		{"plain, routed", withAuth, "http://siem.test:" + port + "/a", 200,
			Request{"GET", "http://siem.test:" + port + "/a", BasicAuth("alice", "pw")}},
		{"wrong password", "http://alice:no@" + p.Addr(), srv.URL + "/b", 407,
			Request{"GET", srv.URL + "/b", BasicAuth("alice", "no")}},
		{"refused", withAuth, "http://refused.test/c", 403,
			Request{"GET", "http://refused.test/c", BasicAuth("alice", "pw")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, err := get(t, tt.proxy, tt.target)
			if err != nil || status != tt.status {
				t.Fatalf("status %d, %v; want %d", status, err, tt.status)
			}
			if got := p.Requests(); got[len(got)-1] != tt.want {
				t.Errorf("recorded %+v, want %+v", got[len(got)-1], tt.want)
			}
		})
	}
}

// TestHTTPSTunnel: an https proxy with its own certificate tunnels CONNECT.
func TestHTTPSTunnel(t *testing.T) {
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "tls target")
	}))
	t.Cleanup(target.Close)
	cert := target.TLS.Certificates[0]
	p := StartHTTP(t, Options{TLS: &cert})
	tr := target.Client().Transport.(*http.Transport).Clone() // trusts the httptest certificate
	u, _ := url.Parse(p.URL())
	tr.Proxy = http.ProxyURL(u)
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := []Request{{"CONNECT", target.Listener.Addr().String(), ""}}
	if string(body) != "tls target" || !slices.Equal(p.Requests(), want) {
		t.Errorf("body %q, recorded %+v; want %+v", body, p.Requests(), want)
	}
}

func TestSOCKS5(t *testing.T) {
	srv, port := startTarget(t)
	open := StartSOCKS5(t, Options{Route: toLoopback})
	closed := StartSOCKS5(t, Options{User: "bob", Password: "pw"})
	tests := []struct {
		name   string
		p      *SOCKS5
		proxy  string // with the credentials to send
		target string
		ok     bool
		want   []Request
	}{
		{"no auth, routed", open, "socks5://" + open.Addr(), "http://siem.test:" + port + "/",
			true, []Request{{"CONNECT", "siem.test:" + port, ""}}},
		{"no auth, refused", open, "socks5://" + open.Addr(), "http://refused.test/",
			false, []Request{{"CONNECT", "siem.test:" + port, ""}, {"CONNECT", "refused.test:80", ""}}},
		{"wrong password", closed, "socks5://bob:no@" + closed.Addr(), srv.URL, false, nil},
		{"no credentials", closed, "socks5://" + closed.Addr(), srv.URL, false, nil},
		{"user and password", closed, "socks5://bob:pw@" + closed.Addr(), srv.URL,
			true, []Request{{"CONNECT", srv.Listener.Addr().String(), "bob:pw"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body, err := get(t, tt.proxy, tt.target)
			if tt.ok && (err != nil || body != "target") || !tt.ok && err == nil {
				t.Errorf("got %q, %v; want success %v", body, err, tt.ok)
			}
			if got := tt.p.Requests(); !slices.Equal(got, tt.want) {
				t.Errorf("recorded %+v, want %+v", got, tt.want)
			}
		})
	}
}
