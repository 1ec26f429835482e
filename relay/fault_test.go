package relay

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
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
		`webhooks.siem { url = "http://%s/siem", delivery.retry { maxAttempts = 15, initialBackoff = 200ms, maxBackoff = 5s } }`, ep.addr))))
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

// TestNATSServerRestart: the NATS server stops mid-stream and starts again on
// the same port and store; every entry published before and after arrives.
func TestNATSServerRestart(t *testing.T) {
	dir, port := t.TempDir(), natstest.FreePort(t)
	srv := natstest.StartAt(t, port, dir)
	_, js := natstest.Connect(t, srv)
	rc := newReceiver(t, nil)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { %s } }`, rc.URL, fastRetry))))
	var want []string
	for i := range 100 {
		want = append(want, entry("Update", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%7), i))
	}
	publish(t, js, "thehive.audit.case", want[:50]...)
	waitFor(t, 10*time.Second, "first half", func() bool { return len(rc.delivered()) >= 50 })

	srv.Shutdown()
	srv.WaitForShutdown()
	srv = natstest.StartAt(t, port, dir)
	_, js = natstest.Connect(t, srv)
	publish(t, js, "thehive.audit.case", want[50:]...)

	waitFor(t, 30*time.Second, "second half", func() bool { return len(uniqueBodies(rc.delivered())) == 100 })
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

// TestSlowWebhookDoesNotDelayOthers: an endpoint taking 2 s per request
// beside a fast one; the fast one gets every entry while the slow one has
// taken at most a couple.
func TestSlowWebhookDoesNotDelayOthers(t *testing.T) {
	srv, js := natsServer(t)
	slow := newReceiver(t, func(*request, int) int { time.Sleep(2 * time.Second); return http.StatusOK })
	fast := newReceiver(t, nil)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks.slow { url = "%s/slow", delivery.maxInFlight = 1 }
webhooks.fast { url = "%s/fast" }`, slow.URL, fast.URL))))
	var want []string
	for i := range 20 {
		want = append(want, entry("Creation", "alert", "a"+strconv.Itoa(i), "a"+strconv.Itoa(i), i))
	}
	start := time.Now()
	publish(t, js, "thehive.audit.alert", want...)
	waitFor(t, 10*time.Second, "fast webhook", func() bool { return len(fast.delivered()) == 20 })
	if n := len(slow.requests()); n > 3 {
		t.Errorf("slow endpoint got %d requests in %v; the fast one should not have waited for it", n, time.Since(start))
	}
	checkSameEntriesInKeyOrder(t, "/fast", fast.delivered(), want)
}

// TestReload: SIGHUP's reload adds a webhook, removes one and leaves the
// third untouched (its in-flight retries go on); a broken file is rejected
// and the running configuration kept.
func TestReload(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
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
	s := startRelay(t, write(fmt.Sprintf(`webhooks { keep { url = "%s/keep" }, gone { url = "%s/gone" } }`, rc.URL, rc.URL)))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "both", func() bool { return len(rc.delivered()) == 2 })

	err := s.Reload(write(fmt.Sprintf(`webhooks { keep { url = "%s/keep" }, added { url = "%s/added", delivery.start = all } }`, rc.URL, rc.URL)))
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	waitFor(t, 10*time.Second, "ready after reload", func() bool { return len(s.NotReady()) == 0 })
	publish(t, js, "thehive.audit.case", entry("Update", "case", "a", "a", 2))
	waitFor(t, 10*time.Second, "keep and added", func() bool {
		return len(rc.bodies("/keep")) == 2 && len(rc.bodies("/added")) == 2
	})
	if n := len(rc.bodies("/gone")); n != 1 {
		t.Errorf("removed webhook got %d entries, want 1 (none after the reload)", n)
	}

	broken := fmt.Sprintf(`webhooks { keep { url = "%s/keep", ws.ssl.trustManager.stores = [ { type = JKS, path = "missing.jks" } ] } }`, rc.URL)
	if err := os.WriteFile(file, []byte(testConfig(srv, broken)), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err := config.Load(file); err == nil {
		if err := s.Reload(cfg); err == nil {
			t.Fatal("a reload with a missing store was accepted")
		}
	} else {
		s.ReloadFailed(err)
		var fe *config.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("load error %v is not a FieldError", err)
		}
	}
	publish(t, js, "thehive.audit.case", entry("Delete", "case", "a", "a", 3))
	waitFor(t, 10*time.Second, "the running config still delivers", func() bool {
		return len(rc.bodies("/keep")) == 3 && len(rc.bodies("/added")) == 3
	})
}
