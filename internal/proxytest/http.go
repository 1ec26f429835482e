package proxytest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// HTTP is an HTTP proxy: it tunnels CONNECT and forwards plain HTTP
// requests.
type HTTP struct {
	recorder
	tunnels
	opts    Options
	srv     *httptest.Server
	forward *http.Transport
}

// StartHTTP starts an HTTP proxy on 127.0.0.1 with a random port, an https
// one when o.TLS is set; it is closed, with its tunnels, when the test ends.
func StartHTTP(t testing.TB, o Options) *HTTP {
	t.Helper()
	p := &HTTP{opts: o}
	p.forward = &http.Transport{
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) { return o.dial(addr) },
	}
	p.srv = httptest.NewUnstartedServer(p)
	p.srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, &connState{})
	}
	p.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	if o.TLS != nil {
		p.srv.TLS = &tls.Config{Certificates: []tls.Certificate{*o.TLS}}
		p.srv.StartTLS()
	} else {
		p.srv.Start()
	}
	t.Cleanup(func() {
		p.srv.Close()
		p.tunnels.close()
		p.forward.CloseIdleConnections()
	})
	return p
}

// connKey holds a client connection's *connState in its requests' context.
type connKey struct{}

// connState is what the proxy knows of one client connection.
type connState struct {
	mu         sync.Mutex
	challenged bool // a 407 challenge was sent on this connection
}

// challengeFirst reports, in Challenge mode, whether r is the first request
// of its connection, which is answered with a challenge.
func (p *HTTP) challengeFirst(r *http.Request) bool {
	if !p.opts.Challenge || p.opts.User == "" {
		return false
	}
	st, _ := r.Context().Value(connKey{}).(*connState)
	if st == nil {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	first := !st.challenged
	st.challenged = true
	return first
}

// URL is the proxy's URL: http://127.0.0.1:port, or https:// with TLS.
func (p *HTTP) URL() string { return p.srv.URL }

// Addr is the proxy's host:port.
func (p *HTTP) Addr() string { return p.srv.Listener.Addr().String() }

// Requests are the requests the proxy received so far, in order.
func (p *HTTP) Requests() []Request { return p.list() }

// ServeHTTP records the request, then checks its credentials (407) and its
// target (403) before tunnelling or forwarding it.
func (p *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Proxy-Authorization")
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.String()
	}
	p.add(Request{Method: r.Method, Target: target, Auth: auth})
	switch {
	case p.challengeFirst(r), p.opts.User != "" && auth != BasicAuth(p.opts.User, p.opts.Password):
		w.Header().Set("Proxy-Authenticate", `Basic realm="proxytest"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
	case p.refused(r):
		http.Error(w, errRefused.Error(), http.StatusForbidden)
	case r.Method == http.MethodConnect:
		p.tunnel(w, r)
	default:
		p.plain(w, r)
	}
}

// refused reports whether Route refuses the request's target.
func (p *HTTP) refused(r *http.Request) bool {
	_, err := p.opts.route(hostport(r))
	return errors.Is(err, errRefused)
}

// hostport is the host:port a request is for: a tunnel's, or a forwarded
// request's with its scheme's default port.
func hostport(r *http.Request) string {
	switch {
	case r.Method == http.MethodConnect:
		return r.Host
	case r.URL.Port() != "":
		return r.URL.Host
	}
	if r.URL.Scheme == "https" {
		return net.JoinHostPort(r.URL.Hostname(), "443")
	}
	return net.JoinHostPort(r.URL.Hostname(), "80")
}

func (p *HTTP) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := p.opts.dial(r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		return
	}
	p.splice(conn, brw.Reader, upstream)
}

func (p *HTTP) plain(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	resp, err := p.forward.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}
