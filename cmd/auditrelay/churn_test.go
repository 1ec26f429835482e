package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// flaky is an endpoint that answers 503 to every tenth request and
// records the others (those delivered) like orderRecorder.
type flaky struct {
	*orderRecorder
	mu      sync.Mutex
	n       int
	refused int
}

func newFlaky(t *testing.T) *flaky {
	f := &flaky{orderRecorder: &orderRecorder{got: map[string][]arrival{}}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := entryFields.FindSubmatch(body)
		if m == nil {
			http.Error(w, "not a test entry", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.n++
		fail := f.n%10 == 0
		if fail {
			f.refused++
		}
		f.mu.Unlock()
		if fail {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		n, _ := strconv.Atoi(string(m[1]))
		f.orderRecorder.mu.Lock()
		f.got[r.URL.Path] = append(f.got[r.URL.Path], arrival{entry: n, root: string(m[2]), id: r.Header.Get("webhook-id"), at: time.Now()})
		f.orderRecorder.mu.Unlock()
		time.Sleep(time.Millisecond)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *flaky) refusals() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refused
}

// TestTwoReplicasNATSRestartWithFailures: two replicas deliver an ordered
// webhook whose endpoint refuses one request in ten; the NATS server is
// restarted mid-stream, which forgets the pin. Every entry is delivered,
// and entries first reach the webhook in order per rootId: the replica
// that held entries lets them go before any replica delivers later
// entries of their keys.
func TestTwoReplicasNATSRestartWithFailures(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartAt(t, -1, dir)
	port := natstest.Port(srv)
	_, js := natstest.Connect(t, srv)
	f := newFlaky(t)
	webhooks := fmt.Sprintf(`webhooks.a { url = "%s/a", delivery { maxInFlight = 8, retry { initialBackoff = 100ms, maxBackoff = 2s, maxAttempts = 1000 } } }`, f.URL)
	var reps []*sidecar
	for range 2 {
		admin := anyPort
		reps = append(reps, startSidecar(t, writeConfigURL(t, srv.ClientURL(), admin, "", webhooks)))
	}
	all := entries(4000)
	publishAll(t, js, all[:2000])
	waitUntil(t, 60*time.Second, "some deliveries to a", func() bool { return f.unique("/a") >= 500 })
	if f.unique("/a") == 2000 {
		t.Fatal("everything was delivered before the restart; the test proves nothing")
	}
	t.Logf("restarting NATS with %d of %d entries at a, %d refused", f.unique("/a"), len(all), f.refusals())
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = natstest.StartAt(t, port, dir)
	_, js = natstest.Connect(t, srv)
	publishAll(t, js, all[2000:])
	waitUntil(t, 180*time.Second, "every entry at a", func() bool { return f.unique("/a") == len(all) })
	f.checkOrder(t, "/a")
	t.Logf("duplicates: %d; refused %d", f.check(t, "/a"), f.refusals())
	_ = reps
}

// roots are the rootIds of entries(n).
func roots() []string {
	out := make([]string, 50)
	for i := range out {
		out[i] = fmt.Sprintf("r%d", i)
	}
	return out
}

// TestFullSchedulerKeepsPin: the replica delivering an ordered webhook
// has its scheduler full, its endpoint refusing everything, for longer
// than PinnedTTL, while the consumer lets the server hand it more than
// the scheduler holds (the second replica's configuration raised the
// consumer's MaxAckPending, as in a rolling reload). It keeps its pin
// throughout: the other replica never becomes active, and once the
// endpoint is back every entry arrives once.
func TestFullSchedulerKeepsPin(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	g := newGate(t)
	retry := `retry { initialBackoff = 200ms, maxBackoff = 1s, maxAttempts = 100000, maxAge = 1h }`
	var reps []*sidecar
	admin := anyPort
	reps = append(reps, startSidecar(t, writeConfigURL(t, srv.ClientURL(), admin, "",
		fmt.Sprintf(`webhooks.a { url = "%s/a", delivery { %s } }`, g.URL, retry))))
	all := entries(1001)
	publishAll(t, js, all[:1])
	waitUntil(t, 20*time.Second, "the first replica active", func() bool {
		return g.unique("/a") == 1 && onlyActive(t, reps, "a") == 0
	})
	// The second replica holds more in flight: its consumer settings let
	// the server hand out more than the first replica's scheduler holds.
	reps = append(reps, startSidecar(t, writeConfigURL(t, srv.ClientURL(), admin, "",
		fmt.Sprintf(`webhooks.a { url = "%s/a", delivery { maxInFlight = 100, %s } }`, g.URL, retry))))
	g.mu.Lock()
	for _, r := range roots() {
		g.failing[r] = true
	}
	g.mu.Unlock()
	publishAll(t, js, all[1:])
	// More handed out than the first replica's scheduler holds (256).
	waitUntil(t, 20*time.Second, "the scheduler full of refused entries", func() bool {
		info := consumerInfo(js, "auditrelay-a")
		return info != nil && info.NumAckPending > 256
	})
	// Longer than PinnedTTL (25 s) with the scheduler full: the role is
	// looked at all along.
	for end := time.Now().Add(35 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := activeOf(t, reps, "a"); got[0] != 1 || got[1] != 0 {
			t.Fatalf("active per replica %v while the first replica's scheduler is full; want [1 0]", got)
		}
	}
	for _, r := range roots() {
		g.open(r)
	}
	waitUntil(t, 120*time.Second, "every entry", func() bool { return g.unique("/a") == len(all) })
	waitSettled(t, js, len(all), "auditrelay-a")
	if dups := g.check(t, "/a"); dups != 0 {
		t.Errorf("%d entries delivered twice", dups)
	}
	g.checkOrder(t, "/a")
	if got := activeOf(t, reps, "a"); got[0] != 1 || got[1] != 0 {
		t.Errorf("active per replica %v at the end; want [1 0]", got)
	}
}

// TestOneKeyFailingOthersFlow: one key (r0) fails for 20 s with 500
// entries of it at the head of the stream; the 1,000 entries of the other
// keys after them are all delivered while r0 is still failing, and once
// it recovers r0's entries follow, every key in order.
func TestOneKeyFailingOthersFlow(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	g := newGate(t, "r0")
	admin := anyPort
	file := writeConfigURL(t, srv.ClientURL(), admin, "", fmt.Sprintf(
		`webhooks.a { url = "%s/a", delivery.retry { initialBackoff = 200ms, maxBackoff = 1s, maxAttempts = 100000, maxAge = 1h } }`, g.URL))
	startSidecar(t, file)
	var all []string
	for i := range 1500 {
		root := 0
		if i >= 500 {
			root = 1 + i%49
		}
		all = append(all, fmt.Sprintf(`{"operation":"Update","objectType":"case_task","objectId":"t%d","rootId":"r%d","startDate":%d}`, i, root, 1700000000000+i))
	}
	failing := time.Now()
	publishAll(t, js, all)
	waitUntil(t, 60*time.Second, "every entry of the other keys while r0 fails", func() bool {
		return g.unique("/a") == 1000
	})
	if g.refusals("r0") == 0 {
		t.Fatal("r0 was never attempted; the test proves nothing")
	}
	t.Logf("other keys delivered %v after publishing, r0 refused %d times", time.Since(failing).Round(100*time.Millisecond), g.refusals("r0"))
	waitUntil(t, 30*time.Second, "r0 failing for 20 s", func() bool { return time.Since(failing) >= 20*time.Second })
	g.open("r0")
	waitUntil(t, 120*time.Second, "every entry", func() bool { return g.unique("/a") == len(all) })
	waitSettled(t, js, len(all), "auditrelay-a")
	g.checkOrder(t, "/a")
	if dups := g.check(t, "/a"); dups != 0 {
		t.Errorf("%d entries delivered twice", dups)
	}
}

// TestFullReplicaLetsGoAfterNATSRestart: the replica delivering an
// ordered webhook has its scheduler full, its endpoint refusing
// everything, when the NATS server restarts and the pin goes to the other
// replica (the full one is not pulling). The full replica learns it from
// its pin renewal and hands back what it holds, although its scheduler
// never gets room: the new pinned replica, which waits for that, starts
// delivering while the endpoint still refuses. Each replica has its own
// path, so the endpoint tells them apart.
func TestFullReplicaLetsGoAfterNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartAt(t, -1, dir)
	port := natstest.Port(srv)
	_, js := natstest.Connect(t, srv)
	g := newGate(t)
	retry := `retry { initialBackoff = 200ms, maxBackoff = 1s, maxAttempts = 100000, maxAge = 1h }`
	var reps []*sidecar
	for i := range 2 {
		admin := anyPort
		reps = append(reps, startSidecar(t, writeConfigURL(t, srv.ClientURL(), admin, "",
			fmt.Sprintf(`webhooks.a { url = "%s/a%d", delivery { %s } }`, g.URL, i, retry))))
	}
	all := entries(1001)
	publishAll(t, js, all[:1])
	waitUntil(t, 20*time.Second, "one replica active", func() bool {
		return g.unique("/a0")+g.unique("/a1") == 1 && onlyActive(t, reps, "a") >= 0
	})
	first := onlyActive(t, reps, "a")
	other := fmt.Sprintf("/a%d", 1-first)
	g.mu.Lock()
	for _, r := range roots() {
		g.failing[r] = true
	}
	g.mu.Unlock()
	publishAll(t, js, all[1:])
	waitUntil(t, 20*time.Second, "the active replica's scheduler full", func() bool {
		info := consumerInfo(js, "auditrelay-a")
		return info != nil && info.NumAckPending > 256
	})
	srv.Shutdown()
	srv.WaitForShutdown()
	srv = natstest.StartAt(t, port, dir)
	_, js = natstest.Connect(t, srv)
	waitUntil(t, 60*time.Second, "the other replica active", func() bool { return onlyActive(t, reps, "a") == 1-first })
	// The new pinned replica attempts entries only once the full one let
	// go of them: its path sees requests while the endpoint still refuses.
	var otherTried bool
	g.mu.Lock()
	g.onRefuse = func(path string) {
		if path == other {
			otherTried = true
		}
	}
	g.mu.Unlock()
	waitUntil(t, 60*time.Second, "the new pinned replica attempting entries", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return otherTried
	})
	for _, r := range roots() {
		g.open(r)
	}
	waitUntil(t, 120*time.Second, "every entry", func() bool { return g.unique("/a0")+g.unique("/a1") >= len(all) })
	merged := map[int]bool{}
	for _, p := range []string{"/a0", "/a1"} {
		for _, a := range g.arrivals(p) {
			merged[a.entry] = true
		}
	}
	if len(merged) != len(all) {
		t.Errorf("%d different entries delivered, want %d", len(merged), len(all))
	}
	g.checkOrder(t, other)
}
