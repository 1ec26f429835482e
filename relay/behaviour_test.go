package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/proxytest"
)

// createAuditStream creates the stream auditrelay would create, so that
// entries can be stored before any sidecar runs.
func createAuditStream(t *testing.T, js jetstream.JetStream, name, subject string) jetstream.Stream {
	t.Helper()
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage, MaxAge: time.Hour,
	})
	if err != nil {
		t.Fatalf("create stream %s: %v", name, err)
	}
	return st
}

// streamTime is the time the stream stored the entry at seq.
func streamTime(t *testing.T, st jetstream.Stream, seq uint64) time.Time {
	t.Helper()
	raw, err := st.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatalf("stream message %d: %v", seq, err)
	}
	return raw.Time
}

// bodiesOf is the receiver's bodies as strings.
func bodiesOf(rc *receiver) []string {
	var out []string
	for _, r := range rc.requests() {
		out = append(out, string(r.body))
	}
	return out
}

func equalStrings(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestRetryMaxAgeDeadLetters (SPEC §4): a failing entry older than
// retry.maxAge at its next retry is dead-lettered long before maxAttempts,
// with the attempts made so far.
func TestRetryMaxAgeDeadLetters(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(*request, int) int { return http.StatusServiceUnavailable })
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 10000, initialBackoff = 20ms, maxBackoff = 50ms, maxAge = 1s } }`, rc.URL))))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	h := readDeadLetters(t, js, "auditrelay.deadletter.siem", 1)[e]
	if h == nil {
		t.Fatal("entry not dead-lettered unchanged")
	}
	attempts, err := strconv.Atoi(h.Get(audit.HeaderAttempts))
	if err != nil {
		t.Fatalf("%s = %q: %v", audit.HeaderAttempts, h.Get(audit.HeaderAttempts), err)
	}
	if made := len(rc.requests()); attempts != made {
		t.Errorf("%s = %d, but the endpoint got %d attempts", audit.HeaderAttempts, attempts, made)
	}
	// With a 50ms ceiling a second holds at most about 50 attempts: far
	// fewer than maxAttempts, so only maxAge can have stopped them.
	if attempts < 2 || attempts > 1000 {
		t.Errorf("%d attempts before the dead letter, want a few (maxAge 1s, backoff 20-50ms)", attempts)
	}
	if got := h.Get(audit.HeaderLastStatus); got != "503" {
		t.Errorf("%s = %q, want 503", audit.HeaderLastStatus, got)
	}
	st, err := js.Stream(t.Context(), "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	last := rc.requests()[attempts-1].started
	if age := last.Sub(streamTime(t, st, 1)); age < time.Second {
		t.Errorf("dead-lettered after an attempt %v after the stream time, before maxAge 1s", age)
	}
}

// TestStartNewSkipsOldEntries (SPEC §2.3): a new webhook with start = new
// on a stream that already holds entries gets only the later ones. All
// entries share a rootId, so the old ones, had they been taken, would have
// come first.
func TestStartNewSkipsOldEntries(t *testing.T) {
	srv, js := natsServer(t)
	createAuditStream(t, js, "THEHIVE_AUDIT", "thehive.audit.>")
	old := []string{entry("Creation", "case", "a", "r", 1), entry("Update", "case", "a", "r", 2)}
	publish(t, js, "thehive.audit.case", old...)
	rc := newReceiver(t, nil)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.start = new }`, rc.URL))))
	later := entry("Update", "case", "a", "r", 3)
	publish(t, js, "thehive.audit.case", later)
	waitFor(t, 10*time.Second, "the later entry", func() bool { return len(rc.requests()) >= 1 })
	if got := bodiesOf(rc); !equalStrings(got, []string{later}) {
		t.Errorf("start = new delivered\n%s\nwant only the entry published after the start", strings.Join(got, "\n"))
	}
}

// TestStartAtTime (SPEC §2.3): start = an RFC 3339 time delivers the stored
// entries from that time on (the entry at exactly that time included),
// then the later ones.
func TestStartAtTime(t *testing.T) {
	srv, js := natsServer(t)
	st := createAuditStream(t, js, "THEHIVE_AUDIT", "thehive.audit.>")
	stored := []string{entry("Creation", "case", "a", "r", 1), entry("Update", "case", "a", "r", 2), entry("Update", "case", "a", "r", 3)}
	publish(t, js, "thehive.audit.case", stored...)
	from := streamTime(t, st, 2)
	if !from.After(streamTime(t, st, 1)) {
		t.Fatalf("entries 1 and 2 share a stream time %v; the test cannot tell them apart", from)
	}
	rc := newReceiver(t, nil)
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.start = "%s" }`,
		rc.URL, from.UTC().Format(time.RFC3339Nano)))))
	later := entry("Update", "case", "a", "r", 4)
	publish(t, js, "thehive.audit.case", later)
	want := []string{stored[1], stored[2], later}
	waitFor(t, 10*time.Second, "the later entry", func() bool {
		got := bodiesOf(rc)
		return len(got) > 0 && got[len(got)-1] == later
	})
	if got := bodiesOf(rc); !equalStrings(got, want) {
		t.Errorf("start = %s delivered\n%s\nwant\n%s", from.Format(time.RFC3339Nano), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestStreamCreateFalse (SPEC §2.4): with stream.create = false an existing
// stream is used as it is, and a missing one keeps the sidecar not ready,
// naming the stream and the key; once the stream exists, it gets ready.
func TestStreamCreateFalse(t *testing.T) {
	conf := func(url, hook string) string {
		return fmt.Sprintf(`
auditrelay {
  nats { url = "%s", stream { name = SOC_AUDIT, create = false } }
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
}
webhooks.siem { url = "%s/siem" }
`, url, hook)
	}
	t.Run("existing", func(t *testing.T) {
		srv, js := natsServer(t)
		// Not what auditrelay would create: kept as it is.
		st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
			Name: "SOC_AUDIT", Subjects: []string{"thehive.audit.>"}, Storage: jetstream.MemoryStorage, MaxMsgs: 1000,
		})
		if err != nil {
			t.Fatal(err)
		}
		rc := newReceiver(t, nil)
		startRelay(t, parseConfig(t, conf(srv.ClientURL(), rc.URL)))
		e := entry("Creation", "case", "a", "a", 1)
		publish(t, js, "thehive.audit.case", e)
		waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.delivered()) == 1 })
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.Config.Storage != jetstream.MemoryStorage || info.Config.MaxMsgs != 1000 {
			t.Errorf("the existing stream was changed: %+v", info.Config)
		}
		if _, err := st.Consumer(t.Context(), "auditrelay-siem"); err != nil {
			t.Errorf("consumer auditrelay-siem on the existing stream: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		srv, js := natsServer(t)
		rc := newReceiver(t, nil)
		r, err := New(parseConfig(t, conf(srv.ClientURL(), rc.URL)), testOptions())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
		var why []string
		waitFor(t, 10*time.Second, "a reason naming the missing stream", func() bool {
			why = r.NotReady()
			return strings.Contains(strings.Join(why, "\n"), "SOC_AUDIT")
		})
		if s := strings.Join(why, "\n"); !strings.Contains(s, "stream.create") {
			t.Errorf("not ready because %q; want the stream and the key stream.create named", s)
		}
		if _, err := js.Stream(t.Context(), "SOC_AUDIT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
			t.Errorf("stream SOC_AUDIT after start: %v, want it still missing", err)
		}
		createAuditStream(t, js, "SOC_AUDIT", "thehive.audit.>")
		waitFor(t, 30*time.Second, "ready once the stream exists", func() bool { return len(r.NotReady()) == 0 })
		publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1))
		waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.delivered()) == 1 })
	})
}

// TestCustomSubjectsAndNames (SPEC §2.4): a custom subject, stream name,
// durablePrefix and deadLetter.subject are used as configured: the stream
// takes the subject, the consumer is <durablePrefix>-<webhook>, and dead
// letters go to <deadLetter.subject>.<webhook>.
func TestCustomSubjectsAndNames(t *testing.T) {
	srv, js := natsServer(t)
	poison := entry("Update", "case", "a", "a", 2)
	rc := newReceiver(t, func(r *request, _ int) int {
		if string(r.body) == poison {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	startRelay(t, parseConfig(t, fmt.Sprintf(`
auditrelay {
  nats { url = "%s", subject = "soc.hive.audit.>", stream { name = SOC_AUDIT, maxAge = 1h }, durablePrefix = socrelay }
  deadLetter.subject = "soc.dead"
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
}
webhooks."siem.eu" { url = "%s/siem" }
`, srv.ClientURL(), rc.URL)))
	good := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "soc.hive.audit.case", good, poison)
	waitFor(t, 10*time.Second, "2 requests", func() bool { return len(rc.requests()) == 2 })
	if got := bodiesOf(rc); !equalStrings(got, []string{good, poison}) {
		t.Errorf("delivered %q", got)
	}
	st, err := js.Stream(t.Context(), "SOC_AUDIT")
	if err != nil {
		t.Fatalf("stream SOC_AUDIT: %v", err)
	}
	if subj := st.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "soc.hive.audit.>" {
		t.Errorf("stream subjects %q, want [soc.hive.audit.>]", subj)
	}
	var names []string
	for name := range st.ConsumerNames(t.Context()).Name() {
		names = append(names, name)
	}
	if !containsString(names, "socrelay-siem_eu") {
		t.Errorf("consumers %q, want socrelay-siem_eu", names)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "auditrelay") {
			t.Errorf("consumer %q uses the default prefix", n)
		}
	}
	if _, err := js.Stream(t.Context(), "THEHIVE_AUDIT"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("default stream THEHIVE_AUDIT: %v, want none", err)
	}
	h := readDeadLetters(t, js, "soc.dead.siem_eu", 1)[poison]
	if h == nil {
		t.Fatal("poison entry not dead-lettered on soc.dead.siem_eu")
	}
	if got := h.Get(audit.HeaderWebhook); got != "siem.eu" {
		t.Errorf("%s = %q, want the name as written", audit.HeaderWebhook, got)
	}
	dl, err := js.Stream(t.Context(), audit.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if subj := dl.CachedInfo().Config.Subjects; len(subj) != 1 || subj[0] != "soc.dead.>" {
		t.Errorf("dead-letter stream subjects %q, want [soc.dead.>]", subj)
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestDeadLetterStreamTime (SPEC §4): Auditrelay-Stream-Time is the entry's
// own timestamp in the audit stream, to the nanosecond, and
// Auditrelay-Stream-Seq its sequence.
func TestDeadLetterStreamTime(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(*request, int) int { return http.StatusUnprocessableEntity })
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem" }`, rc.URL))))
	first, second := entry("Creation", "case", "a", "a", 1), entry("Creation", "case", "b", "b", 2)
	publish(t, js, "thehive.audit.case", first)
	// Stored later, so a header carrying the dead-letter time (or the
	// other entry's) would not match.
	publish(t, js, "thehive.audit.case", second)
	dls := readDeadLetters(t, js, "auditrelay.deadletter.siem", 2)
	st, err := js.Stream(t.Context(), "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	for seq, e := range map[uint64]string{1: first, 2: second} {
		h := dls[e]
		if h == nil {
			t.Fatalf("entry %d not dead-lettered", seq)
		}
		if got := h.Get(audit.HeaderStreamSeq); got != strconv.FormatUint(seq, 10) {
			t.Errorf("entry %d: %s = %q", seq, audit.HeaderStreamSeq, got)
		}
		want := streamTime(t, st, seq)
		got, err := time.Parse(time.RFC3339Nano, h.Get(audit.HeaderStreamTime))
		if err != nil {
			t.Fatalf("entry %d: %s = %q: %v", seq, audit.HeaderStreamTime, h.Get(audit.HeaderStreamTime), err)
		}
		if !got.Equal(want) {
			t.Errorf("entry %d: %s = %v, want the stream's %v", seq, audit.HeaderStreamTime, got, want)
		}
	}
}

// testOptions are startRelay's options, for a test that runs the sidecar
// itself.
func testOptions() Options {
	return Options{Version: "test", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Registry: prometheus.NewRegistry()}
}

// TestDeliveryThroughChallengingProxy: a proxy that challenges before it
// takes credentials (407 with a Basic challenge first on each connection)
// is answered on the delivery path: the entry arrives once, byte for byte,
// in one attempt.
func TestDeliveryThroughChallengingProxy(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "relay", Password: "pr0xy-pw", Challenge: true})
	host, port, err := net.SplitHostPort(proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.siem { url = "%s/siem", ws.proxy { host = %q, port = %s, user = relay, password = "pr0xy-pw" } }`, rc.URL, host, port))))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.delivered()) == 1 })
	reqs := rc.requests()
	if len(reqs) != 1 || string(reqs[0].body) != e || reqs[0].header.Get("Auditrelay-Attempt") != "1" {
		t.Errorf("endpoint got %d requests (first: attempt %q, %s), want the entry once, attempt 1", len(reqs), reqs[0].header.Get("Auditrelay-Attempt"), reqs[0].body)
	}
	if got := proxy.Requests(); len(got) != 2 || got[0].Auth != proxytest.BasicAuth("relay", "pr0xy-pw") || got[1] != got[0] {
		t.Errorf("proxy saw %+v, want the challenged POST and its answer, both with the credentials", got)
	}
}
