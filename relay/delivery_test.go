package relay

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/natstest"
	"github.com/auditrelay/auditrelay/sink"
)

// fastRetry keeps retry tests short: the backoff is SPEC's, scaled down.
const fastRetry = `retry { maxAttempts = 15, initialBackoff = 50ms, maxBackoff = 200ms }`

// endlessRetry is fastRetry with a budget no outage in a test can use up,
// for tests whose outcome must be "delivered" however slow the machine.
const endlessRetry = `retry { maxAttempts = 100000, initialBackoff = 50ms, maxBackoff = 200ms }`

// TestRetriesUntilDelivered: 503 three times, then 200. The entry arrives,
// every attempt carries the same webhook-id and a growing
// Auditrelay-Attempt, and nothing is dead-lettered.
func TestRetriesUntilDelivered(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(_ *request, n int) int {
		if n < 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { %s } }`, rc.URL, fastRetry))))
	want := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", want)
	waitFor(t, 10*time.Second, "4 attempts", func() bool { return len(rc.requests()) == 4 })
	reqs := rc.requests()
	for i, r := range reqs {
		if string(r.body) != want {
			t.Errorf("attempt %d body = %s", i+1, r.body)
		}
		if got := r.header.Get("Auditrelay-Attempt"); got != strconv.Itoa(i+1) {
			t.Errorf("attempt %d: Auditrelay-Attempt = %q", i+1, got)
		}
		if got := r.header.Get("webhook-id"); got != reqs[0].header.Get("webhook-id") {
			t.Errorf("attempt %d: webhook-id %q differs from the first %q", i+1, got, reqs[0].header.Get("webhook-id"))
		}
	}
	waitSettled(t, js, "auditrelay-siem", 1)
	if n := len(rc.requests()); n != 4 {
		t.Errorf("%d requests after the 2xx, want 4", n)
	}
	assertNoDeadLetters(t, srv)
}

// TestRetryAfterHonoured: a 429 with Retry-After: 1 delays the next
// attempt by about a second, though the configured backoff is 50ms: not
// less (the header is honoured), and well short of maxBackoff (the backoff
// was not used in its place).
func TestRetryAfterHonoured(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	rc.respond = func(_ *request, n int) int {
		if n == 0 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	}
	retryAfter := newReceiverWithHeader(t, rc, "Retry-After", "1")
	// Retry-After is capped at maxBackoff: 5s leaves it whole, and a
	// backoff drawn in its place (50ms to 5s) would rarely land near 1s.
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", delivery.retry { initialBackoff = 50ms, maxBackoff = 5s } }`, retryAfter.URL))))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
	waitFor(t, 10*time.Second, "2 attempts", func() bool { return len(rc.requests()) == 2 })
	reqs := rc.requests()
	if gap := reqs[1].started.Sub(reqs[0].started); gap < 900*time.Millisecond || gap > 4*time.Second {
		t.Errorf("second attempt %v after a 429 with Retry-After: 1, want about 1s (maxBackoff is 5s)", gap)
	}
}

// newReceiverWithHeader fronts rc with a server that adds a response header.
func newReceiverWithHeader(t *testing.T, rc *receiver, key, value string) *receiver {
	front := newReceiver(t, nil)
	front.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(key, value)
		rc.Config.Handler.ServeHTTP(w, r)
	})
	return front
}

// TestPermanentFailureDeadLetteredAtOnce: a 400 dead-letters the entry
// after one attempt with every Auditrelay-* header, and the entries after it
// (same rootId) still flow.
func TestPermanentFailureDeadLetteredAtOnce(t *testing.T) {
	srv, js := natsServer(t)
	poison := entry("Update", "case", "a", "a", 2)
	rc := newReceiver(t, func(r *request, _ int) int {
		if string(r.body) == poison {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { %s } }`, rc.URL, fastRetry))))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1), poison, entry("Update", "case", "a", "a", 3))
	waitFor(t, 10*time.Second, "3 requests", func() bool { return len(rc.requests()) == 3 })
	if got := rc.requests()[1].body; string(got) != poison {
		t.Fatalf("second request = %s, want the poison entry (stream order)", got)
	}
	_, js2 := natstest.Connect(t, srv)
	dl := readDeadLetters(t, js2, "auditrelay.deadletter.siem", 1)
	h := dl[poison]
	if h == nil {
		t.Fatalf("poison entry not dead-lettered unchanged; got %v", dl)
	}
	for k, want := range map[string]string{
		audit.HeaderWebhook: "siem", audit.HeaderAttempts: "1", audit.HeaderLastStatus: "400", audit.HeaderStreamSeq: "2",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if h.Get(audit.HeaderReason) == "" {
		t.Error("no Auditrelay-Reason")
	}
}

// TestExhaustedRetriesDeadLettered: an endpoint that always answers 503 gets
// maxAttempts attempts, then the entry is dead-lettered with its count and
// last status.
func TestExhaustedRetriesDeadLettered(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(*request, int) int { return http.StatusServiceUnavailable })
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 3, initialBackoff = 20ms, maxBackoff = 50ms } }`, rc.URL))))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	h := readDeadLetters(t, js, "auditrelay.deadletter.siem", 1)[e]
	if h == nil {
		t.Fatal("entry not dead-lettered unchanged")
	}
	if h.Get(audit.HeaderAttempts) != "3" || h.Get(audit.HeaderLastStatus) != "503" {
		t.Errorf("attempts %q, last status %q; want 3, 503", h.Get(audit.HeaderAttempts), h.Get(audit.HeaderLastStatus))
	}
	if n := len(rc.requests()); n != 3 {
		t.Errorf("%d attempts, want 3", n)
	}
}

// TestOrderPerRootUnderRandomFailures: 200 entries over 10 rootIds with 20%
// random 503s arrive complete, and in stream order per rootId — no attempt
// of an entry before every earlier entry of its root was delivered.
func TestOrderPerRootUnderRandomFailures(t *testing.T) {
	srv, js := natsServer(t)
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	rc := newReceiver(t, func(*request, int) int {
		mu.Lock()
		defer mu.Unlock()
		if rng.IntN(5) == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", delivery { maxInFlight = 8, retry { maxAttempts = 50, initialBackoff = 5ms, maxBackoff = 20ms } } }`, rc.URL))))
	var want []string
	for i := range 200 {
		want = append(want, entry("Update", "case_task", "t"+strconv.Itoa(i), "root"+strconv.Itoa(i%10), i))
	}
	publish(t, js, "thehive.audit.case_task", want...)
	waitFor(t, 30*time.Second, "200 delivered", func() bool { return len(rc.delivered()) == 200 })
	checkSameEntriesInKeyOrder(t, "/siem", rc.delivered(), want)
	checkNoAttemptBeforeEarlierDelivered(t, rc.requests(), want)
	assertNoDeadLetters(t, srv)
}

// checkNoAttemptBeforeEarlierDelivered: for each root, the first attempt of
// entry k comes after the last attempt of entry k-1.
func checkNoAttemptBeforeEarlierDelivered(t *testing.T, reqs []request, want []string) {
	t.Helper()
	first, last := map[string]int{}, map[string]int{}
	for i, r := range reqs {
		b := string(r.body)
		if _, ok := first[b]; !ok {
			first[b] = i
		}
		last[b] = i
	}
	prev := map[string]string{}
	for _, w := range want {
		e, _ := audit.Decode([]byte(w), 0)
		if p, ok := prev[e.RootID]; ok && first[w] < last[p] {
			t.Errorf("root %s: an attempt of %s came before the last attempt of the entry before it", e.RootID, e.ObjectID)
		}
		prev[e.RootID] = w
	}
}

func assertNoDeadLetters(t *testing.T, srv *server.Server) {
	t.Helper()
	_, js := natstest.Connect(t, srv)
	st, err := js.Stream(t.Context(), audit.DeadLetterStream)
	if err != nil {
		t.Fatalf("dead-letter stream: %v", err)
	}
	if n := st.CachedInfo().State.Msgs; n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

// TestEchoedSecretsScrubbed: a receiver that echoes the request's
// Authorization header in its error page does not put the bearer key into
// the dead letter's reason.
func TestEchoedSecretsScrubbed(t *testing.T) {
	srv, js := natsServer(t)
	echo := newReceiver(t, nil)
	echo.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad request; you sent Authorization: %s", r.Header.Get("Authorization"))
	})
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", auth { type = bearer, key = "tok-3c4e9f1b77" } }`, echo.URL))))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	h := readDeadLetters(t, js, "auditrelay.deadletter.siem", 1)[e]
	if h == nil {
		t.Fatal("not dead-lettered")
	}
	reason := h.Get(audit.HeaderReason)
	if strings.Contains(reason, "tok-3c4e9f1b77") || !strings.Contains(reason, "Authorization: Bearer ****") {
		t.Errorf("reason = %q, want the key scrubbed to ****", reason)
	}
}

// TestBatchCarriesOneCaseInOrder: a burst on one case fills batches (the
// entries of a key may share a batch, in stream order), instead of going
// out one per request.
func TestBatchCarriesOneCaseInOrder(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	var want []string
	for i := range 30 {
		want = append(want, entry("Update", "case_task", "t"+strconv.Itoa(i), "case-1", i))
	}
	// A backlog: the stream exists before the sidecar, which starts at all.
	_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "THEHIVE_AUDIT", Subjects: []string{"thehive.audit.>"}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, js, "thehive.audit.case_task", want...)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.bulk { url = "%s/bulk", batch { maxEntries = 10, maxWait = 2s }, delivery.start = all }`, rc.URL))))
	waitFor(t, 10*time.Second, "3 batches", func() bool { return len(rc.delivered()) == 3 })
	// Each batch's webhook-id spans its first and last sequence (SPEC §4).
	for i, r := range rc.requests() {
		first := uint64(10*i + 1)
		if want := sink.WebhookID("THEHIVE_AUDIT", "bulk", first, first+9); r.header.Get("webhook-id") != want {
			t.Errorf("batch %d: webhook-id %q, want %q", i, r.header.Get("webhook-id"), want)
		}
	}
	var got []string
	for _, body := range rc.delivered() {
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			t.Fatalf("batch body: %v", err)
		}
		if len(batch) != 10 {
			t.Errorf("batch of %d entries, want 10", len(batch))
		}
		for _, e := range batch {
			got = append(got, string(e))
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("batched entries are not the published ones in stream order:\n%s", strings.Join(got, "\n"))
	}
}
