package relay

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/sink"
)

// TestDeliversByteIdenticalInOrder is the foundation end to end: a TheHive 3
// webhook and a TheHive 4 endpoint each receive every entry, byte for byte,
// in stream order, with the SPEC §4 headers.
func TestDeliversByteIdenticalInOrder(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks { siem { url = "%s/siem" } }
notification.webhook.endpoints = [ { name = soar, version = 0, url = "%s/soar", wsConfig {}, auth { type = none } } ]
`, rc.URL, rc.URL)))
	startRelay(t, cfg)

	var want []string
	for i := range 50 {
		// Odd spacing and key order must survive: bodies are never re-encoded.
		root := "c" + strconv.Itoa(i%5)
		want = append(want, entry("Creation", "case", "o"+strconv.Itoa(i), root, i)+"  ")
	}
	want = append(want, `{ "objectType" : "case_task", "operation":"update", "objectId":"t1", "rootId":"c1", "details":{"status":"Completed","title":"é ü \u00e9"} }`)
	publish(t, js, "thehive.audit.case", want...)

	waitFor(t, 10*time.Second, "all entries at both webhooks", func() bool {
		return len(rc.bodies("/siem")) == len(want) && len(rc.bodies("/soar")) == len(want)
	})
	for _, path := range []string{"/siem", "/soar"} {
		checkSameEntriesInKeyOrder(t, path, rc.bodies(path), want)
	}
	checkHeaders(t, rc.requests(), want)
}

// checkSameEntriesInKeyOrder checks that got holds exactly the bytes of
// want, and that entries with the same rootId came in publish order.
func checkSameEntriesInKeyOrder(t *testing.T, path string, got [][]byte, want []string) {
	t.Helper()
	pos := map[string]int{}
	for i, w := range want {
		pos[w] = i
	}
	last := map[string]int{}
	for _, b := range got {
		i, ok := pos[string(b)]
		if !ok {
			t.Fatalf("%s got a body that was never published (or was rewritten): %s", path, b)
		}
		delete(pos, string(b))
		e, err := audit.Decode(b, 0)
		if err != nil {
			t.Fatal(err)
		}
		if prev, seen := last[e.RootID]; seen && prev > i {
			t.Errorf("%s: entry %d of root %s arrived after entry %d", path, i, e.RootID, prev)
		}
		last[e.RootID] = i
	}
	if len(pos) != 0 {
		t.Errorf("%s: %d entries never arrived", path, len(pos))
	}
}

// checkHeaders checks SPEC §4's headers on first attempts; published holds
// the entries in publish order (stream sequence i+1), so each webhook-id is
// the one SPEC gives: <stream>.<webhook>.<sequence>.
func checkHeaders(t *testing.T, reqs []request, published []string) {
	t.Helper()
	seq := map[string]uint64{}
	for i, e := range published {
		seq[e] = uint64(i + 1)
	}
	ids := map[string]bool{}
	for _, r := range reqs {
		n, ok := seq[string(r.body)]
		if !ok {
			t.Fatalf("%s got a body never published: %s", r.path, r.body)
		}
		if want := sink.WebhookID("THEHIVE_AUDIT", strings.TrimPrefix(r.path, "/"), n, n); r.header.Get("webhook-id") != want {
			t.Errorf("%s entry %d: webhook-id %q, want %q", r.path, n, r.header.Get("webhook-id"), want)
		}
		if got := r.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		if got := r.header.Get("User-Agent"); got != "auditrelay/test" {
			t.Errorf("User-Agent = %q, want auditrelay/test", got)
		}
		if got := r.header.Get("Auditrelay-Attempt"); got != "1" {
			t.Errorf("Auditrelay-Attempt = %q, want 1", got)
		}
		id := r.path + " " + r.header.Get("webhook-id")
		if r.header.Get("webhook-id") == "" || ids[id] {
			t.Errorf("webhook-id %q missing or repeated", id)
		}
		ids[id] = true
	}
}

// TestResumesAfterRestart stops the sidecar, publishes while it is down,
// starts it again: every entry arrives once, nothing missed.
func TestResumesAfterRestart(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks { siem { url = "%s/siem" } }`, rc.URL)))
	s := startRelay(t, cfg)
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1), entry("Update", "case", "a", "a", 2))
	waitFor(t, 10*time.Second, "first two", func() bool { return len(rc.bodies("/siem")) == 2 })
	s.stop(t)

	publish(t, js, "thehive.audit.case", entry("Update", "case", "a", "a", 3), entry("Delete", "case", "a", "a", 4))
	if n := len(rc.bodies("/siem")); n != 2 { // Run has returned: nothing can deliver
		t.Fatalf("delivered %d while stopped", n)
	}
	startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks { siem { url = "%s/siem" } }`, rc.URL))))
	waitFor(t, 10*time.Second, "all four", func() bool { return len(rc.bodies("/siem")) >= 4 })
	waitSettled(t, js, "auditrelay-siem", 4)
	got := rc.bodies("/siem")
	if len(got) != 4 {
		t.Fatalf("got %d deliveries, want 4 (no duplicates after a clean stop):\n%s", len(got), joinLines(got))
	}
	for i, b := range got {
		if want := entry([]string{"Creation", "Update", "Update", "Delete"}[i], "case", "a", "a", i+1); string(b) != want {
			t.Errorf("delivery %d = %s, want %s", i, b, want)
		}
	}
}

// TestInvalidEntriesDeadLettered feeds garbage between good entries: the
// garbage goes to the _invalid dead-letter subject with its reason, the
// good entries all arrive, and the sidecar keeps going.
func TestInvalidEntriesDeadLettered(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks { siem { url = "%s/siem" }, chat { url = "%s/chat" } }
auditrelay.nats.maxEntryBytes = 2048`, rc.URL, rc.URL)))
	startRelay(t, cfg)
	bad := map[string]string{
		`not json`: "not a JSON object",
		`[1,2]`:    "not a JSON object",
		`{"operation":"Creation","objectType":"case"}`:                                                             `missing required field "objectId"`,
		`{"operation":"Frobnicate","objectType":"case","objectId":"x"}`:                                            `"Frobnicate" is not Creation, Update or Delete`,
		"{\"operation\":\"Creation\",\"objectType\":\"case\",\"objectId\":\"\xff\"}":                               "not valid UTF-8",
		`{"operation":"Creation","objectType":"case","objectId":"big","pad":"` + string(make([]byte, 2100)) + `"}`: "larger than maxEntryBytes",
	}
	var good []string
	for raw := range bad {
		good = append(good, entry("Creation", "case", "ok", "ok", len(good)))
		publish(t, js, "thehive.audit.case", good[len(good)-1], raw)
	}
	waitFor(t, 10*time.Second, "good entries", func() bool {
		return len(rc.bodies("/siem")) == len(bad) && len(rc.bodies("/chat")) == len(bad)
	})
	// Exactly the good entries, in order, reached each webhook: no garbage.
	for _, path := range []string{"/siem", "/chat"} {
		if got := joinLines(rc.bodies(path)); got != strings.Join(good, "\n") {
			t.Errorf("%s got:\n%s\nwant the good entries only:\n%s", path, got, strings.Join(good, "\n"))
		}
	}
	got := readDeadLetters(t, js, "auditrelay.deadletter._invalid", len(bad))
	for raw, reason := range bad {
		h, ok := got[raw]
		if !ok {
			t.Errorf("no dead letter for %q", raw)
			continue
		}
		if r := h.Get(audit.HeaderReason); !strings.Contains(r, reason) {
			t.Errorf("reason for %.40q = %q, want it to contain %q", raw, r, reason)
		}
	}
}

func readDeadLetters(t *testing.T, js jetstream.JetStream, subject string, n int) map[string]headerGetter {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, audit.DeadLetterStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatalf("dead-letter consumer: %v", err)
	}
	got := map[string]headerGetter{}
	for len(got) < n {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("reading dead letters (%d of %d): %v", len(got), n, err)
		}
		got[string(msg.Data())] = msg.Headers()
	}
	return got
}

type headerGetter interface{ Get(string) string }
