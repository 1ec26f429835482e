// Package proxytest starts real, in-process HTTP and SOCKS5 proxies on
// loopback that record what went through them, for the tests of sink,
// relay and cmd/auditrelay. It is test support only.
//
// The proxies reach loopback addresses only, so a test that goes astray
// fails instead of dialling out.
package proxytest

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Options configures a proxy; the zero value is an open proxy to loopback
// targets.
type Options struct {
	// User and Password, when User is set, are the credentials clients
	// must present: Basic Proxy-Authorization for HTTP (else 407), RFC 1929
	// username/password for SOCKS5 (else the connection is refused).
	User, Password string
	// Challenge, for the HTTP proxy with User only, makes it challenge
	// before it accepts credentials: the first request on each client
	// connection is answered 407 with `Proxy-Authenticate: Basic
	// realm="proxytest"` whatever it carries, and credentials are taken
	// only on a later request of that connection, as a proxy does that
	// wants the client to answer its challenge rather than send
	// credentials unasked. Without Challenge, valid credentials sent
	// unasked (preemptively) are taken at once, and a request without
	// them gets the same 407 challenge, as squid does with Basic auth.
	Challenge bool
	// TLS, for the HTTP proxy only, serves it over TLS with this
	// certificate: an https proxy.
	TLS *tls.Certificate
	// Route maps the host:port a client asks for to the host:port dialled,
	// so a name such as siem.test can reach a loopback server; "" refuses
	// the target (403 for HTTP, "not allowed by ruleset" for SOCKS5). Nil
	// dials every target as given.
	Route func(hostport string) string
}

// Request is one request a proxy received. The HTTP proxy records every
// request as it arrives, before checking its credentials; the SOCKS5 proxy
// records each CONNECT request, which the protocol sends only after the
// client authenticated.
type Request struct {
	// Method is CONNECT for a tunnel, or the method of a plain HTTP
	// request the proxy forwarded.
	Method string
	// Target is the host:port of a tunnel, or the absolute URL of a
	// forwarded request, as the client asked for it (before Route).
	Target string
	// Auth is the Proxy-Authorization header as sent, or for SOCKS5
	// "user:password" when the client authenticated that way; "" for none.
	Auth string
}

// BasicAuth is the Proxy-Authorization value a client sends for user and
// password with Basic authentication.
func BasicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// recorder holds the requests a proxy received.
type recorder struct {
	mu   sync.Mutex
	reqs []Request
}

func (r *recorder) add(req Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
}

func (r *recorder) list() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.reqs...)
}

// errRefused is a target Route refused.
var errRefused = errors.New("target refused by policy")

// route applies o.Route to hostport.
func (o Options) route(hostport string) (string, error) {
	if o.Route == nil {
		return hostport, nil
	}
	if addr := o.Route(hostport); addr != "" {
		return addr, nil
	}
	return "", errRefused
}

// dial routes hostport and dials the result if it is a loopback address.
func (o Options) dial(hostport string) (net.Conn, error) {
	addr, err := o.route(hostport)
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("test proxy dials loopback only, not " + addr)
	}
	return net.DialTimeout("tcp", addr, 5*time.Second)
}

// tunnels are the spliced connections of a proxy, closed when it is, so
// that no tunnel outlives the test.
type tunnels struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// splice copies both ways between client (read through fromClient, which
// may hold bytes already buffered) and upstream until either side closes or
// the proxy is closed, then closes both.
func (ts *tunnels) splice(client net.Conn, fromClient io.Reader, upstream net.Conn) {
	if !ts.track(client, upstream) {
		client.Close()
		upstream.Close()
		return
	}
	defer ts.untrack(client, upstream)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, fromClient); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
	client.Close()
	upstream.Close()
	<-done
}

func (ts *tunnels) track(conns ...net.Conn) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	if ts.conns == nil {
		ts.conns = map[net.Conn]struct{}{}
	}
	for _, c := range conns {
		ts.conns[c] = struct{}{}
	}
	ts.wg.Add(1)
	return true
}

func (ts *tunnels) untrack(conns ...net.Conn) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, c := range conns {
		delete(ts.conns, c)
	}
	ts.wg.Done()
}

// close closes every open tunnel and waits for their copies to end.
func (ts *tunnels) close() {
	ts.mu.Lock()
	ts.closed = true
	for c := range ts.conns {
		c.Close()
	}
	ts.mu.Unlock()
	ts.wg.Wait()
}
