package relay

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// flappingEndpoint is an HTTP endpoint on a fixed loopback port that can be
// taken down (connections refused) and brought back.
type flappingEndpoint struct {
	addr string
	rc   *receiver
	srv  *http.Server
}

func newFlappingEndpoint(t *testing.T, rc *receiver) *flappingEndpoint {
	f := &flappingEndpoint{rc: rc}
	f.up(t, "127.0.0.1:0")
	t.Cleanup(f.down)
	return f
}

func (f *flappingEndpoint) up(t *testing.T, addr string) {
	t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port may linger briefly after a close
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	f.addr = l.Addr().String()
	f.srv = &http.Server{Handler: f.rc.Config.Handler}
	go func() { _ = f.srv.Serve(l) }()
}

func (f *flappingEndpoint) down() { _ = f.srv.Close() }

// TestEndpointDownThenBack: the endpoint refuses connections for 15 s; the
// entries wait (retrying) and all arrive once it is back, none dead-lettered.
func TestEndpointDownThenBack(t *testing.T) {
	srv, js := natsServer(t)
	ep := newFlappingEndpoint(t, newReceiver(t, nil))
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "http://%s/siem", delivery.retry { maxAttempts = 100000, initialBackoff = 200ms, maxBackoff = 1s } }`, ep.addr))))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 0))
	waitFor(t, 10*time.Second, "first entry", func() bool { return len(ep.rc.delivered()) == 1 })

	ep.down()
	var want []string
	for i := 1; i <= 30; i++ {
		want = append(want, entry("Update", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%3), i))
	}
	publish(t, js, "thehive.audit.case", want...)
	time.Sleep(15 * time.Second)
	ep.up(t, ep.addr)

	waitFor(t, 20*time.Second, "all entries after the outage", func() bool { return len(ep.rc.delivered()) == 31 })
	checkSameEntriesInKeyOrder(t, "/siem", ep.rc.delivered()[1:], want)
	assertNoDeadLetters(t, srv)
}

// TestNATSServerRestart: the NATS server stops mid-stream, with requests in
// flight and retries under way (every third request answers 503), and
// starts again on the same port and store; every entry published before and
// after arrives, in order per key, none dead-lettered.
func TestNATSServerRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartAt(t, -1, dir)
	port := natstest.Port(srv)
	_, js := natstest.Connect(t, srv)
	rc := newReceiver(t, func(_ *request, n int) int {
		time.Sleep(5 * time.Millisecond) // keeps requests in flight
		if n%3 == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { maxInFlight = 8, %s } }`, rc.URL, endlessRetry))))
	var want []string
	for i := range 200 {
		want = append(want, entry("Update", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%7), i))
	}
	publish(t, js, "thehive.audit.case", want[:150]...)
	waitFor(t, 10*time.Second, "deliveries under way", func() bool { return len(rc.delivered()) >= 20 })
	retrying := len(rc.requests()) - len(rc.delivered())

	srv.Shutdown()
	srv.WaitForShutdown()
	stoppedAt := len(uniqueBodies(rc.delivered()))
	if stoppedAt >= 150 {
		t.Fatalf("all %d entries were delivered before NATS stopped; the test proves nothing", stoppedAt)
	}
	if retrying == 0 {
		t.Fatal("no request had failed before NATS stopped: no retry was under way")
	}
	t.Logf("NATS stopped with %d of 150 delivered and %d attempts failed", stoppedAt, retrying)
	srv = natstest.StartAt(t, port, dir)
	_, js = natstest.Connect(t, srv)
	publish(t, js, "thehive.audit.case", want[150:]...)

	waitFor(t, 60*time.Second, "every entry", func() bool { return len(uniqueBodies(rc.delivered())) == len(want) })
	checkSameEntriesInKeyOrder(t, "/siem", uniqueBodies(rc.delivered()), want)
	assertNoDeadLetters(t, srv)
}

// uniqueBodies drops repeats: at-least-once allows a redelivery around a
// server restart (an ack lost with the connection).
func uniqueBodies(b [][]byte) [][]byte {
	seen := map[string]bool{}
	var out [][]byte
	for _, x := range b {
		if !seen[string(x)] {
			seen[string(x)] = true
			out = append(out, x)
		}
	}
	return out
}

// TestSlowWebhookDoesNotDelayOthers: an endpoint that holds its request
// beside a fast one; the fast one gets every entry while the slow one still
// holds its first.
func TestSlowWebhookDoesNotDelayOthers(t *testing.T) {
	srv, js := natsServer(t)
	release := make(chan struct{})
	slow := newReceiver(t, func(*request, int) int { <-release; return http.StatusOK })
	defer close(release)
	fast := newReceiver(t, nil)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks.slow { url = "%s/slow", delivery.maxInFlight = 1 }
webhooks.fast { url = "%s/fast" }`, slow.URL, fast.URL))))
	var want []string
	for i := range 20 {
		want = append(want, entry("Creation", "alert", "a"+strconv.Itoa(i), "a"+strconv.Itoa(i), i))
	}
	publish(t, js, "thehive.audit.alert", want...)
	// The slow endpoint holds its first request until the fast webhook has
	// everything: the fast one cannot have waited for it.
	waitFor(t, 10*time.Second, "fast webhook, while slow holds its first request", func() bool { return len(fast.delivered()) == 20 })
	if n := len(slow.requests()); n != 1 {
		t.Errorf("slow endpoint got %d requests, want its first one, still held", n)
	}
	checkSameEntriesInKeyOrder(t, "/fast", fast.delivered(), want)
}

// TestReload: SIGHUP's reload adds a webhook, removes one, moves one to a
// new URL and leaves the fourth untouched: its retry chain under way goes
// on across the reload (its attempts keep counting, one webhook-id); a file
// whose store reads but is wrong (a bad password) is rejected and the
// running configuration kept.
func TestReload(t *testing.T) {
	srv, js := natsServer(t)
	var keepFailing atomic.Bool
	keepFailing.Store(true)
	rc := newReceiver(t, func(r *request, _ int) int {
		if r.path == "/keep" && keepFailing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	file := filepath.Join(t.TempDir(), "application.conf")
	write := func(webhooks string) *config.Config {
		if err := os.WriteFile(file, []byte(testConfig(srv, webhooks)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(file)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		return cfg
	}
	keep := fmt.Sprintf(`keep { url = "%s/keep", delivery.retry { maxAttempts = 1000, initialBackoff = 50ms, maxBackoff = 100ms } }`, rc.URL)
	s := startRelay(t, write(fmt.Sprintf(`webhooks { %s, gone { url = "%s/gone" }, moved { url = "%s/moved-old" } }`, keep, rc.URL, rc.URL)))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "gone and moved", func() bool { return len(rc.bodies("/gone")) == 1 && len(rc.bodies("/moved-old")) == 1 })
	waitFor(t, 10*time.Second, "keep retrying", func() bool { return len(rc.bodies("/keep")) >= 3 })

	err := s.Reload(write(fmt.Sprintf(`webhooks { %s, moved { url = "%s/moved-new" }, added { url = "%s/added", delivery.start = all } }`, keep, rc.URL, rc.URL)))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitFor(t, 10*time.Second, "ready after reload", func() bool { return len(s.NotReady()) == 0 })
	before := len(rc.bodies("/keep"))
	waitFor(t, 10*time.Second, "keep still retrying after the reload", func() bool { return len(rc.bodies("/keep")) >= before+3 })
	keepFailing.Store(false)
	publish(t, js, "thehive.audit.case", entry("Update", "case", "a", "a", 2))
	waitFor(t, 10*time.Second, "keep, moved and added", func() bool {
		return len(rc.delivered()) == 7 // gone 1, moved-old 1, keep 2, moved-new 1, added 2
	})
	if n := len(rc.bodies("/gone")); n != 1 {
		t.Errorf("removed webhook got %d entries, want 1 (none after the reload)", n)
	}
	if n, m := len(rc.bodies("/moved-old")), len(rc.bodies("/moved-new")); n != 1 || m != 1 {
		t.Errorf("moved webhook: %d at the old URL, %d at the new one, want 1 and 1", n, m)
	}
	checkRetryChainUnbroken(t, rc, "/keep")

	jks, err := filepath.Abs("../tlsconf/testdata/truststore.jks")
	if err != nil {
		t.Fatal(err)
	}
	badStore := fmt.Sprintf(`webhooks { %s, added { url = "%s/added", ws.ssl.trustManager.stores = [ { type = JKS, path = "%s", password = "n0t-the-pa55" } ] } }`, keep, rc.URL, jks)
	if err := s.Reload(write(badStore)); err == nil || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("a reload with a wrong store password: %v, want rejected naming the password", err)
	}
	publish(t, js, "thehive.audit.case", entry("Delete", "case", "a", "a", 3))
	waitFor(t, 10*time.Second, "the running config still delivers", func() bool {
		return len(rc.bodies("/added")) == 3 && len(rc.bodies("/moved-new")) == 2
	})
}

// checkRetryChainUnbroken: the first entry's attempts at path count 1, 2, 3…
// without starting over and share one webhook-id: the reload did not
// restart the webhook.
func checkRetryChainUnbroken(t *testing.T, rc *receiver, path string) {
	t.Helper()
	var id string
	n := 0
	for _, r := range rc.requests() {
		if r.path != path || !strings.Contains(string(r.body), `"requestId":"req-1"`) {
			continue
		}
		n++
		if got := r.header.Get("Auditrelay-Attempt"); got != strconv.Itoa(n) {
			t.Fatalf("%s attempt %d came as Auditrelay-Attempt %s: the retry chain started over", path, n, got)
		}
		if id == "" {
			id = r.header.Get("webhook-id")
		}
		if got := r.header.Get("webhook-id"); got != id || id == "" {
			t.Fatalf("%s attempt %d webhook-id %q, first %q", path, n, got, id)
		}
	}
}
