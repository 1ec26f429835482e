package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testResolve maps the names tests use through proxies (httpproxy never
// proxies localhost, so env-proxy tests need a real-looking name) to the
// loopback address; every other host is dialled as given, and only
// loopback addresses are dialled at all.
func testDial(hostport string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if host == "siem.test" || host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, errors.New("test proxy dials loopback only, not " + hostport)
	}
	return net.DialTimeout("tcp", net.JoinHostPort(host, port), 5*time.Second)
}

// record is what went through a test proxy.
type record struct {
	mu      sync.Mutex
	entries []string // "CONNECT siem.test:443", "GET http://…", "SOCKS 127.0.0.1:8443"
	auth    []string // Proxy-Authorization values, or "user:password" for SOCKS
}

func (r *record) add(entry, auth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, entry)
	r.auth = append(r.auth, auth)
}

func (r *record) snapshot() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.entries...), append([]string(nil), r.auth...)
}

// httpProxy is an HTTP proxy: CONNECT tunnels and plain forwarding, with
// optional Basic authentication (407) and refused targets (403).
type httpProxy struct {
	*httptest.Server
	record
	user, password string
	deny           string // host:port answered 403
	forward        *http.Transport
}

func startHTTPProxy(t *testing.T, user, password string, tlsCert *tls.Certificate) *httpProxy {
	t.Helper()
	p := &httpProxy{user: user, password: password}
	p.forward = &http.Transport{
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) { return testDial(addr) },
	}
	p.Server = httptest.NewUnstartedServer(p)
	if tlsCert != nil {
		p.TLS = &tls.Config{Certificates: []tls.Certificate{*tlsCert}}
		p.StartTLS()
	} else {
		p.Start()
	}
	t.Cleanup(func() {
		p.Close()
		p.forward.CloseIdleConnections()
	})
	return p
}

func (p *httpProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Proxy-Authorization")
	target := r.Host
	if r.Method != http.MethodConnect {
		target = r.URL.String()
	}
	p.add(r.Method+" "+target, auth)
	switch {
	case p.user != "" && auth != "Basic "+base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.password)):
		w.Header().Set("Proxy-Authenticate", `Basic realm="test"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
	case p.deny != "" && r.Host == p.deny:
		http.Error(w, "target refused by policy", http.StatusForbidden)
	case r.Method == http.MethodConnect:
		p.tunnel(w, r)
	default:
		p.plain(w, r)
	}
}

func (p *httpProxy) tunnel(w http.ResponseWriter, r *http.Request) {
	upstream, err := testDial(r.Host)
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
	pipe(conn, brw.Reader, upstream)
}

func (p *httpProxy) plain(w http.ResponseWriter, r *http.Request) {
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
	io.Copy(w, resp.Body)
}

// pipe copies both ways until either side closes, then closes both.
func pipe(client net.Conn, fromClient io.Reader, upstream net.Conn) {
	done := make(chan struct{}, 2)
	go func() { io.Copy(upstream, fromClient); done <- struct{}{} }()
	go func() { io.Copy(client, upstream); done <- struct{}{} }()
	<-done
	client.Close()
	upstream.Close()
	<-done
}

// socksProxy is a SOCKS5 proxy (RFC 1928, CONNECT only) with optional
// username/password authentication (RFC 1929).
type socksProxy struct {
	record
	ln             net.Listener
	user, password string
	wg             sync.WaitGroup
}

func startSOCKSProxy(t *testing.T, user, password string) *socksProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &socksProxy{ln: ln, user: user, password: password}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.wg.Wait()
	})
	return p
}

func (p *socksProxy) addr() string { return p.ln.Addr().String() }

func (p *socksProxy) serve() {
	defer p.wg.Done()
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(conn)
		}()
	}
}

func (p *socksProxy) handle(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	auth, ok := p.negotiate(br, conn)
	if !ok {
		return
	}
	target, err := readSOCKSRequest(br)
	if err != nil {
		return
	}
	p.add("SOCKS "+target, auth)
	upstream, err := testDial(target)
	if err != nil {
		conn.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0}) // connection refused
		return
	}
	conn.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
	conn.SetDeadline(time.Time{})
	pipe(conn, br, upstream)
}

// negotiate selects the method and checks the credentials.
func (p *socksProxy) negotiate(br *bufio.Reader, conn net.Conn) (string, bool) {
	head := make([]byte, 2)
	if _, err := io.ReadFull(br, head); err != nil || head[0] != 5 {
		return "", false
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return "", false
	}
	if p.user == "" {
		conn.Write([]byte{5, 0})
		return "", true
	}
	if !strings.Contains(string(methods), "\x02") {
		conn.Write([]byte{5, 0xff})
		return "", false
	}
	conn.Write([]byte{5, 2})
	user, password, err := readSOCKSAuth(br)
	if err != nil || user != p.user || password != p.password {
		conn.Write([]byte{1, 1})
		return user + ":" + password, false
	}
	conn.Write([]byte{1, 0})
	return user + ":" + password, true
}

func readSOCKSAuth(br *bufio.Reader) (string, string, error) {
	if v, err := br.ReadByte(); err != nil || v != 1 {
		return "", "", errors.New("bad auth version")
	}
	user, err := readLenString(br)
	if err != nil {
		return "", "", err
	}
	password, err := readLenString(br)
	return user, password, err
}

func readLenString(br *bufio.Reader) (string, error) {
	n, err := br.ReadByte()
	if err != nil {
		return "", err
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(br, buf)
	return string(buf), err
}

func readSOCKSRequest(br *bufio.Reader) (string, error) {
	head := make([]byte, 4)
	if _, err := io.ReadFull(br, head); err != nil || head[0] != 5 || head[1] != 1 {
		return "", errors.New("not a SOCKS5 CONNECT")
	}
	var host string
	switch head[3] {
	case 1, 4:
		ip := make([]byte, map[byte]int{1: 4, 4: 16}[head[3]])
		if _, err := io.ReadFull(br, ip); err != nil {
			return "", err
		}
		host = net.IP(ip).String()
	case 3:
		name, err := readLenString(br)
		if err != nil {
			return "", err
		}
		host = name
	default:
		return "", errors.New("bad address type")
	}
	port := make([]byte, 2)
	if _, err := io.ReadFull(br, port); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port)))), nil
}
