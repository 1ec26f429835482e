package relay

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
)

// consumerInfo reads a webhook consumer's state from the server.
func consumerInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "THEHIVE_AUDIT", name)
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer %s info: %v", name, err)
	}
	return info
}

// waitSettled waits until the consumer has acknowledged everything up to
// last and holds nothing: from then on no redelivery can come, which a
// sleep could not show (an expired ack comes back after AckWait).
func waitSettled(t *testing.T, js jetstream.JetStream, consumer string, last uint64) {
	t.Helper()
	waitFor(t, 10*time.Second, consumer+" settled at "+strconv.FormatUint(last, 10), func() bool {
		info := consumerInfo(t, js, consumer)
		return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == last
	})
}

// TestAckFollowsTheOutcome reads the consumer's acknowledgement state around
// each outcome (SPEC §4): an entry being retried is unacknowledged; a
// delivered one is acknowledged; a permanent failure whose dead letter
// cannot be stored (the dead-letter stream is gone) stays unacknowledged
// until the dead letter is stored, then is acknowledged.
func TestAckFollowsTheOutcome(t *testing.T) {
	srv, js := natsServer(t)
	var answer atomic.Int32
	answer.Store(http.StatusServiceUnavailable)
	rc := newReceiver(t, func(*request, int) int { return int(answer.Load()) })
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { maxInFlight = 1, %s } }`,
		rc.URL, `retry { maxAttempts = 1000, initialBackoff = 50ms, maxBackoff = 100ms }`))))
	const consumer = "auditrelay-siem"

	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "retries", func() bool { return len(rc.requests()) >= 3 })
	if info := consumerInfo(t, js, consumer); info.NumAckPending != 1 || info.AckFloor.Stream != 0 {
		t.Fatalf("while retrying: ack pending %d, ack floor %d; want 1 and 0", info.NumAckPending, info.AckFloor.Stream)
	}
	answer.Store(http.StatusOK)
	waitFor(t, 10*time.Second, "acknowledged after the 2xx", func() bool {
		info := consumerInfo(t, js, consumer)
		return info.NumAckPending == 0 && info.AckFloor.Stream == 1
	})

	// The dead-letter stream disappears: a permanent failure cannot be
	// stored, so its entry must stay unacknowledged.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dls, err := js.Stream(ctx, audit.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	dlConfig := dls.CachedInfo().Config
	if err := js.DeleteStream(ctx, audit.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	answer.Store(http.StatusBadRequest)
	publish(t, js, "thehive.audit.case", entry("Update", "case", "a", "a", 2))
	waitFor(t, 10*time.Second, "the permanent failure", func() bool { return len(rc.bodies("/siem")) >= 5 })
	// Storing is retried with backoff; give it several tries.
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if info := consumerInfo(t, js, consumer); info.NumAckPending != 1 || info.AckFloor.Stream != 1 {
			t.Fatalf("dead letter not stored, yet ack pending %d, ack floor %d; want 1 and 1", info.NumAckPending, info.AckFloor.Stream)
		}
	}
	if _, err := js.CreateStream(ctx, dlConfig); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "acknowledged once the dead letter is stored", func() bool {
		info := consumerInfo(t, js, consumer)
		return info.NumAckPending == 0 && info.AckFloor.Stream == 2
	})
	st, err := js.Stream(ctx, audit.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("%d dead letters, want 1", n)
	}
}

// TestMaxInFlightIsTheCeiling: with entries of many keys waiting, an
// endpoint that holds every request sees exactly maxInFlight at once, never
// more.
func TestMaxInFlightIsTheCeiling(t *testing.T) {
	srv, js := natsServer(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	open, most := 0, 0
	rc := newReceiver(t, func(*request, int) int {
		mu.Lock()
		open++
		most = max(most, open)
		mu.Unlock()
		<-release
		mu.Lock()
		open--
		mu.Unlock()
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.maxInFlight = 4 }`, rc.URL))))
	t.Cleanup(letGo) // runs first: a failing test does not leave requests held
	var all []string
	for i := range 20 {
		all = append(all, entry("Creation", "case", "c"+strconv.Itoa(i), "c"+strconv.Itoa(i), i))
	}
	publish(t, js, "thehive.audit.case", all...)
	waitFor(t, 10*time.Second, "four requests held", func() bool { mu.Lock(); defer mu.Unlock(); return open >= 4 })
	// Sixteen more are ready; a fifth request would come at once.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	held := most
	mu.Unlock()
	letGo()
	waitFor(t, 10*time.Second, "every entry", func() bool { return len(rc.delivered()) == 20 })
	mu.Lock()
	defer mu.Unlock()
	if held != 4 || most != 4 {
		t.Fatalf("at most %d requests at once while held, %d in all; want exactly maxInFlight = 4", held, most)
	}
}

// TestHeartbeatKeepsALongRetryChain: a retry chain longer than AckWait
// (20 s) keeps its entry: InProgress is sent while it runs, so JetStream
// never redelivers it (NumRedelivered stays 0 throughout), and it is
// delivered once the endpoint is back.
func TestHeartbeatKeepsALongRetryChain(t *testing.T) {
	srv, js := natsServer(t)
	var failing atomic.Bool
	failing.Store(true)
	rc := newReceiver(t, func(*request, int) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 1000, initialBackoff = 500ms, maxBackoff = 1s } }`, rc.URL))))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "the first attempt", func() bool { return len(rc.requests()) >= 1 })
	first := rc.requests()[0].started
	for time.Since(first) < audit.AckWait+5*time.Second {
		if info := consumerInfo(t, js, "auditrelay-siem"); info.NumRedelivered != 0 {
			t.Fatalf("JetStream redelivered the entry %v into its retry chain: no heartbeat", time.Since(first).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	failing.Store(false)
	waitFor(t, 10*time.Second, "delivered", func() bool { return len(rc.delivered()) == 1 })
	if info := consumerInfo(t, js, "auditrelay-siem"); info.NumAckPending != 0 || info.AckFloor.Stream != 1 {
		t.Errorf("after delivery: ack pending %d, ack floor %d", info.NumAckPending, info.AckFloor.Stream)
	}
}

// TestBacklogWaitsInJetStream: while the endpoint is down, a backlog stays
// in JetStream: the webhook's consumer has at most its MaxAckPending
// (1,024 for the defaults: 256 held in memory, the pull buffer, and room
// for entries handed back for later) unacknowledged, and the rest is
// pending on the server; all of it arrives once the endpoint is back.
func TestBacklogWaitsInJetStream(t *testing.T) {
	srv, js := natsServer(t)
	var down atomic.Bool
	down.Store(true)
	rc := newReceiver(t, func(*request, int) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	// A retry budget no outage here can use up: nothing is dead-lettered.
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 100000, initialBackoff = 50ms, maxBackoff = 200ms } }`, rc.URL))))
	const n, maxAckPending = 3000, 1024
	var all []string
	for i := range n {
		all = append(all, entry("Update", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%100), i))
	}
	publish(t, js, "thehive.audit.case", all...)
	waitFor(t, 10*time.Second, "the webhook to hold its share", func() bool {
		return consumerInfo(t, js, "auditrelay-siem").NumAckPending >= 256
	})
	// The server lets the webhook have at most maxAckPending unacknowledged
	// (what it holds in memory, and what it handed back to wait).
	if got := consumerInfo(t, js, "auditrelay-siem").Config.MaxAckPending; got != maxAckPending {
		t.Fatalf("the consumer's MaxAckPending is %d, want %d", got, maxAckPending)
	}
	for range 5 {
		info := consumerInfo(t, js, "auditrelay-siem")
		// The server's NumPending may lag its delivered count by one; what
		// matters is that nearly all of the backlog is there, not here.
		if info.NumAckPending > maxAckPending || info.NumPending < n-maxAckPending-16 {
			t.Fatalf("unacknowledged %d, pending in JetStream %d; want at most %d unacknowledged and the rest pending",
				info.NumAckPending, info.NumPending, maxAckPending)
		}
		time.Sleep(200 * time.Millisecond)
	}
	down.Store(false)
	waitFor(t, 60*time.Second, "the backlog", func() bool { return len(uniqueBodies(rc.delivered())) == n })
	assertNoDeadLetters(t, srv)
}

// The intake counts a backlog, and dead-letters its invalid entries, at
// its own speed while the only webhook is down: it is paced to the
// webhooks only while they move (it decodes for them), never held at the
// pace of one that does not.
func TestIntakeCountsWhileWebhooksAreDown(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(*request, int) int { return http.StatusServiceUnavailable })
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 100000, initialBackoff = 50ms, maxBackoff = 200ms } }`, rc.URL)))
	r := startWith(t, cfg, Options{Version: "test", Logger: quietLog(), Registry: prometheus.NewRegistry()})
	waitFor(t, 10*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })
	const n = 3000
	var all []string
	for i := range n {
		all = append(all, entry("Update", "case", "o"+strconv.Itoa(i), "r"+strconv.Itoa(i%100), i))
	}
	publish(t, js, "thehive.audit.case", all...)
	publishRaw(t, srv.ClientURL(), "thehive.audit.case", "not json")
	waitMetric(t, r.AdminAddr(), n+1, "auditrelay_entries_received_total")
	waitMetric(t, r.AdminAddr(), 1, "auditrelay_entries_invalid_total")
}
