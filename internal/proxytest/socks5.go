package proxytest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// SOCKS5 reply codes (RFC 1928 §6) and methods (§3).
const (
	socksSucceeded      = 0
	socksNotAllowed     = 2
	socksRefused        = 5
	socksCmdUnsupported = 7
	socksNoAuth         = 0
	socksUserPassword   = 2
	socksNoMethod       = 0xff
)

// SOCKS5 is a SOCKS5 proxy (RFC 1928, CONNECT only), without
// authentication or with username/password (RFC 1929).
type SOCKS5 struct {
	recorder
	tunnels
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup
}

// StartSOCKS5 starts a SOCKS5 proxy on 127.0.0.1 with a random port; it is
// closed, with its tunnels, when the test ends. o.TLS must be nil.
func StartSOCKS5(t testing.TB, o Options) *SOCKS5 {
	t.Helper()
	if o.TLS != nil {
		t.Fatal("proxytest: a SOCKS5 proxy has no TLS")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &SOCKS5{opts: o, ln: ln}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		ln.Close()
		p.tunnels.close()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's host:port.
func (p *SOCKS5) Addr() string { return p.ln.Addr().String() }

// Requests are the CONNECT requests the proxy received so far, in order;
// Method is always CONNECT.
func (p *SOCKS5) Requests() []Request { return p.list() }

func (p *SOCKS5) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.handle(conn) })
	}
}

// handle serves one client; any deviation from the protocol ends the
// connection.
func (p *SOCKS5) handle(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	auth, err := p.negotiate(br, conn)
	if err != nil {
		return
	}
	target, err := readRequest(br)
	if err != nil {
		if errors.Is(err, errUnsupported) {
			reply(conn, socksCmdUnsupported)
		}
		return
	}
	p.add(Request{Method: "CONNECT", Target: target, Auth: auth})
	upstream, err := p.opts.dial(target)
	switch {
	case errors.Is(err, errRefused):
		reply(conn, socksNotAllowed)
		return
	case err != nil:
		reply(conn, socksRefused)
		return
	}
	reply(conn, socksSucceeded)
	_ = conn.SetDeadline(time.Time{})
	p.splice(conn, br, upstream)
}

// reply answers a CONNECT request; the bound address is always 0.0.0.0:0.
func reply(conn net.Conn, code byte) {
	_, _ = conn.Write([]byte{5, code, 0, 1, 0, 0, 0, 0, 0, 0})
}

// negotiate selects the method and checks the credentials, returning them
// as "user:password" ("" without authentication).
func (p *SOCKS5) negotiate(br *bufio.Reader, conn net.Conn) (string, error) {
	var head [2]byte
	if _, err := io.ReadFull(br, head[:]); err != nil || head[0] != 5 {
		return "", errors.New("not SOCKS5")
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(br, methods); err != nil {
		return "", err
	}
	method := byte(socksNoAuth)
	if p.opts.User != "" {
		method = socksUserPassword
	}
	if !slices.Contains(methods, method) {
		_, _ = conn.Write([]byte{5, socksNoMethod})
		return "", errors.New("no acceptable method")
	}
	_, _ = conn.Write([]byte{5, method})
	if method == socksNoAuth {
		return "", nil
	}
	user, password, err := readUserPassword(br)
	if err != nil || user != p.opts.User || password != p.opts.Password {
		_, _ = conn.Write([]byte{1, 1})
		return "", errors.New("bad credentials")
	}
	_, _ = conn.Write([]byte{1, 0})
	return user + ":" + password, nil
}

func readUserPassword(br *bufio.Reader) (string, string, error) {
	if v, err := br.ReadByte(); err != nil || v != 1 {
		return "", "", errors.New("bad auth version")
	}
	user, err := readString(br)
	if err != nil {
		return "", "", err
	}
	password, err := readString(br)
	return user, password, err
}

// readString reads a string preceded by its length in one byte.
func readString(br *bufio.Reader) (string, error) {
	n, err := br.ReadByte()
	if err != nil {
		return "", err
	}
	buf := make([]byte, n)
	_, err = io.ReadFull(br, buf)
	return string(buf), err
}

// errUnsupported is a request other than CONNECT.
var errUnsupported = errors.New("only CONNECT is supported")

// readRequest reads a request and returns its target as host:port.
func readRequest(br *bufio.Reader) (string, error) {
	var head [4]byte
	if _, err := io.ReadFull(br, head[:]); err != nil || head[0] != 5 {
		return "", errors.New("not a SOCKS5 request")
	}
	if head[1] != 1 {
		return "", errUnsupported
	}
	var host string
	switch head[3] {
	case 1, 4: // IPv4, IPv6
		ip := make([]byte, map[byte]int{1: net.IPv4len, 4: net.IPv6len}[head[3]])
		if _, err := io.ReadFull(br, ip); err != nil {
			return "", err
		}
		host = net.IP(ip).String()
	case 3: // domain name
		name, err := readString(br)
		if err != nil {
			return "", err
		}
		host = name
	default:
		return "", errors.New("bad address type")
	}
	var port [2]byte
	if _, err := io.ReadFull(br, port[:]); err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(port[:])))), nil
}
