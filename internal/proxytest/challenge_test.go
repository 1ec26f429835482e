package proxytest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"
)

// connect sends CONNECT target on conn with auth ("" for none) and reads
// the answer.
func connect(t *testing.T, conn net.Conn, br *bufio.Reader, target, auth string) *http.Response {
	t.Helper()
	req := fmt.Sprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading the answer to CONNECT: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp
}

// TestHTTPChallengesBeforeCredentials: in Challenge mode the first request
// of a connection gets 407 with a Basic challenge even with the right
// credentials; on the same connection, the answer with credentials is
// taken and the tunnel works, while an answer without them is challenged
// again. Without Challenge, the same credentials sent unasked are taken at
// once, and a request without any gets the challenge.
func TestHTTPChallengesBeforeCredentials(t *testing.T) {
	srv, _ := startTarget(t)
	target := srv.Listener.Addr().String()
	good := BasicAuth("alice", "pw")
	dial := func(p *HTTP) (net.Conn, *bufio.Reader) {
		conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		return conn, bufio.NewReader(conn)
	}
	challenged := func(resp *http.Response) bool {
		return resp.StatusCode == http.StatusProxyAuthRequired && resp.Header.Get("Proxy-Authenticate") == `Basic realm="proxytest"`
	}

	strict := StartHTTP(t, Options{User: "alice", Password: "pw", Challenge: true})
	conn, br := dial(strict)
	if resp := connect(t, conn, br, target, good); !challenged(resp) {
		t.Fatalf("first CONNECT with credentials: %s %q, want 407 with a Basic challenge", resp.Status, resp.Header.Get("Proxy-Authenticate"))
	}
	if resp := connect(t, conn, br, target, ""); !challenged(resp) {
		t.Fatalf("answer without credentials: %s, want 407 with a Basic challenge", resp.Status)
	}
	resp := connect(t, conn, br, target, good)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("answer with credentials: %s, want 200", resp.Status)
	}
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: "+target+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	tunnelled, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("through the tunnel: %v", err)
	}
	body, _ := io.ReadAll(tunnelled.Body)
	if string(body) != "target" {
		t.Errorf("through the tunnel: %q", body)
	}
	want := []Request{{"CONNECT", target, good}, {"CONNECT", target, ""}, {"CONNECT", target, good}}
	if got := strict.Requests(); !slices.Equal(got, want) {
		t.Errorf("recorded %+v, want %+v", got, want)
	}
	// A new connection is challenged again.
	conn2, br2 := dial(strict)
	if resp := connect(t, conn2, br2, target, good); !challenged(resp) {
		t.Errorf("first CONNECT of a new connection: %s, want the challenge", resp.Status)
	}

	lenient := StartHTTP(t, Options{User: "alice", Password: "pw"})
	conn3, br3 := dial(lenient)
	if resp := connect(t, conn3, br3, target, ""); !challenged(resp) {
		t.Errorf("CONNECT without credentials: %s, want 407 with a Basic challenge", resp.Status)
	}
	if resp := connect(t, conn3, br3, target, good); resp.StatusCode != http.StatusOK {
		t.Errorf("CONNECT with credentials: %s, want 200", resp.Status)
	}
	conn4, br4 := dial(lenient)
	if resp := connect(t, conn4, br4, target, good); resp.StatusCode != http.StatusOK {
		t.Errorf("credentials sent unasked: %s, want 200", resp.Status)
	}
}
