package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// TestSIGINTDrainsAndExitsZero (SPEC §5): SIGINT, like SIGTERM, stops the
// process with exit 0 after it finished what was in flight: a request the
// endpoint holds across the signal is answered, the entry is acked before
// the process exits, and nothing is left pending.
func TestSIGINTDrainsAndExitsZero(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	answered := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		once.Do(func() { close(arrived) })
		<-release
		w.WriteHeader(http.StatusOK)
		mu.Lock()
		answered++
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	admin := anyPort
	file := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks.a { url = "%s/a" }`, hook.URL))

	var logs syncBuffer
	cmd := exec.Command(binary, "run", "-config", file)
	cmd.Stderr = &logs
	s := startProcess(t, cmd)

	publishAll(t, js, entries(1))
	select {
	case <-arrived:
	case <-time.After(15 * time.Second):
		t.Fatal("the entry never reached the endpoint")
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the process to log that it is stopping", func() bool {
		return strings.Contains(logs.String(), "auditrelay stopping")
	})
	select {
	case err := <-s.done:
		s.done <- err
		t.Fatalf("exited (%v) while a request was still in flight", err)
	default:
	}
	close(release)
	select {
	case err := <-s.done:
		s.done <- nil
		if err != nil {
			t.Fatalf("exit after SIGINT: %v, want 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGINT (shutdownTimeout is 10s)")
	}
	if !strings.Contains(logs.String(), "auditrelay stopped") {
		t.Error("no 'auditrelay stopped' line: the process did not stop the orderly way")
	}

	cons, err := js.Consumer(t.Context(), "THEHIVE_AUDIT", "auditrelay-a")
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 1 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("after the drain: ack floor %d, %d pending, %d redelivered; want the entry acked (1, 0, 0)",
			info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	if answered != 1 {
		t.Errorf("%d requests answered, want the one in flight", answered)
	}
}
