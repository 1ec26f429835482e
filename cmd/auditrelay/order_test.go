package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// writeConfigURL is writeConfig against a NATS URL.
func writeConfigURL(t *testing.T, url, admin, extra, webhooks string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "application.conf")
	conf := fmt.Sprintf(`auditrelay {
  nats.url = "%s"
  admin.listen = "%s"
  shutdownTimeout = 10s
  log { level = info, format = text }
  %s
}
%s
`, url, admin, extra, webhooks)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// gate is an endpoint that records arrivals like orderRecorder and answers
// 503 to the entries of the keys in failing.
type gate struct {
	*orderRecorder
	mu      sync.Mutex
	failing map[string]bool
	refused map[string]int
	// onRefuse, when set, is told the path of each refused request, under mu.
	onRefuse func(path string)
}

func newGate(t *testing.T, failing ...string) *gate {
	g := &gate{orderRecorder: &orderRecorder{got: map[string][]arrival{}}, failing: map[string]bool{}, refused: map[string]int{}}
	for _, k := range failing {
		g.failing[k] = true
	}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := entryFields.FindSubmatch(body)
		if m == nil {
			http.Error(w, "not a test entry", http.StatusBadRequest)
			return
		}
		root := string(m[2])
		g.mu.Lock()
		fail := g.failing[root]
		if fail {
			g.refused[root]++
			if g.onRefuse != nil {
				g.onRefuse(r.URL.Path)
			}
		}
		g.mu.Unlock()
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		n, _ := strconv.Atoi(string(m[1]))
		g.orderRecorder.mu.Lock()
		g.got[r.URL.Path] = append(g.got[r.URL.Path], arrival{entry: n, root: root, id: r.Header.Get("webhook-id"), at: time.Now()})
		g.orderRecorder.mu.Unlock()
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gate) refusals(root string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refused[root]
}

func (g *gate) open(root string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.failing, root)
}

// TestPlainConsumerSIGKILLKeepsOrder: against a server taken for 2.10 (no
// priority groups, so the webhook's consumer is plain), a sidecar is killed
// with SIGKILL while one key retries with later entries of it queued and
// heartbeated; a new process delivers every entry, each key in order:
// what the dead one held comes back as ack deadlines expire, and goes out
// in stream order before anything later of its key.
func TestPlainConsumerSIGKILLKeepsOrder(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	url := natstest.AsVersion(t, srv, "2.10.0")
	g := newGate(t, "r7")
	admin := anyPort
	file := writeConfigURL(t, url, admin, "", fmt.Sprintf(`webhooks.a { url = "%s/a", delivery.retry { initialBackoff = 200ms, maxBackoff = 1s, maxAttempts = 1000 } }`, g.URL))
	s := startSidecar(t, file)
	waitUntil(t, 10*time.Second, "the webhook's consumer", func() bool {
		c, err := js.Consumer(context.Background(), "THEHIVE_AUDIT", "auditrelay-a")
		if err != nil {
			return false
		}
		if c.CachedInfo().Config.PriorityPolicy != jetstream.PriorityPolicyNone {
			t.Fatal("the consumer is pinned: the fallback was not forced")
		}
		return true
	})

	all := entries(2000)
	publishAll(t, js, all[:1000])
	// r7 fails long enough for its queue to be heartbeated more than once.
	waitUntil(t, 60*time.Second, "r7 refused for a while", func() bool {
		return g.unique("/a") >= 900 && g.refusals("r7") >= 15
	})
	killHard(t, s)
	t.Logf("killed with %d of %d entries delivered, r7 refused %d times", g.unique("/a"), len(all), g.refusals("r7"))
	g.open("r7")
	// Later entries of every key, r7 included, wait in the stream when the
	// new process starts.
	publishAll(t, js, all[1000:])
	startSidecar(t, file)
	waitUntil(t, 90*time.Second, "every entry", func() bool { return g.unique("/a") == len(all) })
	g.checkOrder(t, "/a")
	t.Logf("duplicates: %d", g.check(t, "/a"))
}

// TestSIGTERMWithALongRequestDeliversOnce: of two replicas, the one
// delivering for the ordered webhook gets SIGTERM while a request it sent
// is held for 30 s, longer than AckWait. It keeps that entry in progress
// until the answer comes and acknowledges it: the other replica, which
// takes the pin meanwhile, never delivers it too.
func TestSIGTERMWithALongRequestDeliversOnce(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	var mu sync.Mutex
	got := map[int]int{}
	held := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := entryFields.FindSubmatch(body)
		if m == nil {
			http.Error(w, "not a test entry", http.StatusBadRequest)
			return
		}
		n, _ := strconv.Atoi(string(m[1]))
		mu.Lock()
		got[n]++
		first := n == 0 && got[n] == 1
		mu.Unlock()
		if first {
			close(held)
			time.Sleep(30 * time.Second) // an endpoint this slow, once
		}
	}))
	t.Cleanup(rc.Close)
	count := func(n int) int { mu.Lock(); defer mu.Unlock(); return got[n] }
	webhooks := fmt.Sprintf(`webhooks.a { url = "%s/a", ws.timeout { request = 45s, idle = 45s } }`, rc.URL)
	var reps []*sidecar
	for range 2 {
		admin := anyPort
		reps = append(reps, startSidecar(t, writeConfigURL(t, srv.ClientURL(), admin, "shutdownTimeout = 45s", webhooks)))
	}
	publishAll(t, js, entries(1))
	select {
	case <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("the entry never reached the endpoint")
	}
	waitUntil(t, 10*time.Second, "one active replica for a", func() bool { return onlyActive(t, reps, "a") >= 0 })
	who := onlyActive(t, reps, "a")
	if err := reps[who].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reps[who].done:
		reps[who].done <- nil
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v, want 0", err)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("no exit within shutdownTimeout")
	}
	// The survivor holds the pin now; anything it would deliver again has
	// long expired: one more entry through it shows it is delivering.
	publishAll(t, js, entries(2)[1:])
	waitUntil(t, 30*time.Second, "the next entry through the survivor", func() bool { return count(1) == 1 })
	if n := count(0); n != 1 {
		t.Errorf("the entry in flight at SIGTERM reached the endpoint %d times, want once", n)
	}
}
