package ingest_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/ingest"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// TestDrain: on shutdown the listener stops accepting, and a request whose
// body is still arriving is read, stored and answered before Run returns.
func TestDrain(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	s, err := ingest.New(ingestConfig(), ingest.Options{Store: e.src, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	active := make(chan struct{}, 1)
	s.OnHandle(func() { active <- struct{}{} })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(cancel)

	body := theHive5Body
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST /thehive5 HTTP/1.1\r\nHost: " + s.Addr() + "\r\nContent-Type: application/json\r\nUser-Agent: AHC/2.1\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
	if _, err := io.WriteString(conn, head+body[:100]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-active: // the request is in the handler, reading its body
	case <-time.After(10 * time.Second):
		t.Fatal("the request never became active")
	}
	cancel()
	waitUntil(t, "the listener to stop accepting", func() bool {
		c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Run returned (%v) before the request in flight was answered", err)
	default:
	}
	if _, err := io.WriteString(conn, body[100:]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"stored"`) {
		t.Fatalf("request in flight at shutdown: %d %s", resp.StatusCode, answer)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain")
	}
}

// waitUntil polls cond every 20ms for up to 10 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
