package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpproxy"

	"github.com/auditrelay/auditrelay/config"
)

// A webhook behind an http or https proxy with credentials has its CONNECT
// tunnels opened here rather than by net/http, which sends the credentials
// unasked and gives up on a 407: a proxy that challenges first (407 with
// `Proxy-Authenticate: Basic`) is answered, once, with the credentials, on
// the same connection (or a new one when the proxy closes it). Plain-http
// requests that such a proxy forwards are answered the same way by
// challengeAnswerer. Every other webhook uses net/http's own proxy support.

// maxChallengeBody bounds what is read of a 407's body before answering.
const maxChallengeBody = 64 << 10

// answersChallenges reports whether the webhook may reach its endpoint
// through an http or https proxy with credentials: its proxy block, or with
// useProxyProperties and no block, HTTPS_PROXY/HTTP_PROXY with user info.
func answersChallenges(wh *config.Webhook) bool {
	p := wh.WS.Proxy
	if p.Host != "" {
		return p.User != "" && (p.Protocol == config.ProxyHTTP || p.Protocol == config.ProxyHTTPS)
	}
	if !wh.WS.UseProxyProperties {
		return false
	}
	env := httpproxy.FromEnvironment()
	return strings.Contains(env.HTTPSProxy, "@") || strings.Contains(env.HTTPProxy, "@")
}

// tunneller is the Transport's Proxy and DialTLSContext for such a webhook.
type tunneller struct {
	choose  func(*http.Request) (*url.URL, error) // proxyFor(wh)
	tr      *http.Transport                       // its TLSClientConfig, as net/http completed it (h2)
	dialer  *net.Dialer
	timeout time.Duration // timeout.connection: the CONNECT exchange and each TLS handshake
	// direct dials an endpoint reached without a proxy (nil: TLS here).
	direct func(ctx context.Context, network, addr string) (net.Conn, error)

	mu         sync.Mutex
	tlsProxies map[string]bool // https proxies net/http itself reaches over TLS (plain-http endpoints)
}

// tunnelled reports whether a request to target through proxy is
// tunnelled by the tunneller: an https endpoint behind an http or https
// proxy with credentials.
func tunnelled(target, proxy *url.URL) bool {
	s := strings.ToLower(proxy.Scheme)
	return strings.EqualFold(target.Scheme, "https") && (s == "http" || s == "https") && proxy.User != nil
}

// proxy is the Transport's Proxy: nil (direct, as far as net/http knows)
// for the tunnels opened by dialTLS.
func (t *tunneller) proxy(r *http.Request) (*url.URL, error) {
	u, err := t.choose(r)
	if err != nil || u == nil {
		return u, err
	}
	if tunnelled(r.URL, u) {
		return nil, nil
	}
	if strings.EqualFold(u.Scheme, "https") {
		t.mu.Lock()
		t.tlsProxies[proxyAddr(u)] = true
		t.mu.Unlock()
	}
	return u, nil
}

// dialTLS is the Transport's DialTLSContext: net/http calls it for every
// https connection it believes direct: an https proxy of a plain-http
// request, an endpoint reached directly, or one to tunnel.
func (t *tunneller) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	toProxy := t.tlsProxies[addr]
	t.mu.Unlock()
	if toProxy {
		raw, err := t.dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return t.handshake(ctx, raw, host)
	}
	target := &url.URL{Scheme: "https", Host: addr}
	u, err := t.choose(&http.Request{URL: target, Host: addr})
	if err != nil {
		return nil, err
	}
	if u == nil || !tunnelled(target, u) {
		if t.direct != nil {
			return t.direct(ctx, network, addr)
		}
		raw, err := t.dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return t.handshake(ctx, raw, host)
	}
	conn, err := t.connect(ctx, u, addr)
	if err != nil {
		return nil, err
	}
	return t.handshake(ctx, conn, host)
}

// handshake is TLS with the webhook's settings to host over raw, as
// net/http would do it, bounded by timeout.connection.
func (t *tunneller) handshake(ctx context.Context, raw net.Conn, host string) (net.Conn, error) {
	cfg := t.tr.TLSClientConfig.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if t.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.timeout)
		defer cancel()
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return conn, nil
}

// connect opens a tunnel to addr through proxy: CONNECT with the Basic
// credentials; a 407 with a Basic challenge is answered once. A refusal is
// a *proxyError; failing to reach the proxy a "proxyconnect" *net.OpError.
func (t *tunneller) connect(ctx context.Context, proxy *url.URL, addr string) (net.Conn, error) {
	auth := basicProxyAuth(proxy.User)
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for answered := false; ; answered = true {
		if conn == nil {
			c, err := t.dialProxy(ctx, proxy)
			if err != nil {
				return nil, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
			}
			conn, br = c, bufio.NewReader(c)
		}
		resp, err := t.exchange(ctx, conn, br, addr, auth)
		if err != nil {
			return nil, &net.OpError{Op: "proxyconnect", Net: "tcp", Err: err}
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			if br.Buffered() > 0 {
				return nil, &proxyError{Proxy: redactProxy(proxy), Status: "sent data before the tunnel was open"}
			}
			c := conn
			conn = nil
			return c, nil
		case resp.StatusCode == http.StatusProxyAuthRequired && !answered && basicChallenge(resp.Header):
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxChallengeBody))
			resp.Body.Close()
			if resp.Close {
				conn.Close()
				conn = nil
			}
		default:
			resp.Body.Close()
			return nil, &proxyError{Proxy: redactProxy(proxy), Status: resp.Status}
		}
	}
}

// dialProxy reaches the proxy: TCP, and TLS for an https proxy (verified
// like the endpoint, with the webhook's trust stores).
func (t *tunneller) dialProxy(ctx context.Context, proxy *url.URL) (net.Conn, error) {
	raw, err := t.dialer.DialContext(ctx, "tcp", proxyAddr(proxy))
	if err != nil || !strings.EqualFold(proxy.Scheme, "https") {
		return raw, err
	}
	return t.handshake(ctx, raw, proxy.Hostname())
}

// exchange sends one CONNECT and reads the answer's header, bounded by
// timeout.connection and ctx.
func (t *tunneller) exchange(ctx context.Context, conn net.Conn, br *bufio.Reader, addr, auth string) (*http.Response, error) {
	deadline := time.Time{}
	if t.timeout > 0 {
		deadline = time.Now().Add(t.timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: addr}, Host: addr, Header: http.Header{}}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if err := req.Write(conn); err != nil {
		return nil, err
	}
	return http.ReadResponse(br, req)
}

// challengeAnswerer answers a 407 Basic challenge to a plain-http request
// that an http or https proxy with credentials forwards: once, with the
// request sent again (its body read anew).
type challengeAnswerer struct {
	*http.Transport
	choose func(*http.Request) (*url.URL, error)
}

// RoundTrip sends req, and sends it once more after a proxy's challenge.
func (c challengeAnswerer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.Transport.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusProxyAuthRequired || !basicChallenge(resp.Header) ||
		!strings.EqualFold(req.URL.Scheme, "http") || req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return resp, err
	}
	if u, _ := c.choose(req); u == nil || u.User == nil {
		return resp, nil
	}
	again := req.Clone(req.Context())
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		again.Body = body
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxChallengeBody))
	resp.Body.Close()
	return c.Transport.RoundTrip(again)
}

// basicChallenge reports whether a 407 offers Basic authentication.
func basicChallenge(h http.Header) bool {
	for _, v := range h.Values("Proxy-Authenticate") {
		if f := strings.Fields(v); len(f) > 0 && strings.EqualFold(strings.TrimSuffix(f[0], ","), "basic") {
			return true
		}
	}
	return false
}

func basicProxyAuth(u *url.Userinfo) string {
	if u == nil {
		return ""
	}
	pw, _ := u.Password()
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw))
}

// proxyAddr is the proxy's host:port, with its scheme's default port.
func proxyAddr(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if strings.EqualFold(u.Scheme, "https") {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
