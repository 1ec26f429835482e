package natstest

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

var versionField = regexp.MustCompile(`"version":"[^"]*"`)

// AsVersion is a loopback TCP proxy to srv that rewrites the version in the
// server's first INFO line, so a client takes a current server for an
// older one (2.10: no priority groups) without any knob in the code under
// test. It returns the proxy's nats:// URL; it is closed when the test
// ends.
func AsVersion(t testing.TB, srv *server.Server, version string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	target := srv.Addr().String()
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			upstream, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, client, upstream)
			mu.Unlock()
			wg.Go(func() { relayInfo(client, upstream, version) })
			wg.Go(func() { _, _ = io.Copy(upstream, client); upstream.Close() })
		}
	})
	return "nats://" + l.Addr().String()
}

// relayInfo copies upstream to client with the version of every INFO
// replaced (the server sends INFO again after CONNECT). A MSG or HMSG
// payload, whose size its line gives, is copied as it is.
func relayInfo(client, upstream net.Conn, version string) {
	defer client.Close()
	r := bufio.NewReader(upstream)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		if bytes.HasPrefix(line, []byte("INFO ")) {
			line = versionField.ReplaceAll(line, []byte(`"version":"`+version+`"`))
		}
		if _, err := client.Write(line); err != nil {
			return
		}
		if !bytes.HasPrefix(line, []byte("MSG ")) && !bytes.HasPrefix(line, []byte("HMSG ")) {
			continue
		}
		f := bytes.Fields(line)
		size, err := strconv.Atoi(string(f[len(f)-1]))
		if err != nil {
			return
		}
		if _, err := io.CopyN(client, r, int64(size)+2); err != nil {
			return
		}
	}
}
