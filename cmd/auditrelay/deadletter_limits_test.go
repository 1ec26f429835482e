package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// judgingReceiver is a real HTTP endpoint that records every request and
// answers what judge says of its body.
type judgingReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	hits  []toolHit
	codes []int
	judge func(body []byte) int
}

func newJudgingReceiver(t *testing.T, judge func(body []byte) int) *judgingReceiver {
	rc := &judgingReceiver{judge: judge}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		code := rc.judge(body)
		rc.hits = append(rc.hits, toolHit{r.URL.Path, r.Header.Get("webhook-id"), r.Header.Get("Auditrelay-Attempt"), body})
		rc.codes = append(rc.codes, code)
		rc.mu.Unlock()
		w.WriteHeader(code)
		if code >= 300 {
			// A long answer makes a long Auditrelay-Reason.
			fmt.Fprintf(w, `{"error": "rejected: %s"}`, strings.Repeat("no ", 60))
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *judgingReceiver) setJudge(judge func(body []byte) int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.judge = judge
}

// answered returns the requests whose body is body, and the codes answered.
func (rc *judgingReceiver) answered(body string) (hits []toolHit, codes []int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, h := range rc.hits {
		if string(h.body) == body {
			hits, codes = append(hits, h), append(codes, rc.codes[i])
		}
	}
	return hits, codes
}

// paddedToolEntry is a valid entry of root rootID of exactly size bytes.
func paddedToolEntry(t *testing.T, id, rootID string, size int) string {
	t.Helper()
	head := fmt.Sprintf(`{"operation":"Update","objectType":"case","objectId":%q,"rootId":%q,"details":{"pad":"`, id, rootID)
	tail := `"}}`
	n := size - len(head) - len(tail)
	if n <= 0 {
		t.Fatalf("size %d too small", size)
	}
	return head + strings.Repeat("x", n) + tail
}

// TestDeadLetterTooLargeForNATS: an entry just under the server's
// max_payload is rejected by its webhook; with the dead-letter headers it
// would exceed max_payload, so it is stored without its body. Its key is
// released (the next entry of the same root is delivered), `deadletter
// list` shows it from the audit stream, and `redrive` delivers its very
// bytes with the original webhook-id.
func TestDeadLetterTooLargeForNATS(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 4096 })
	_, js := natstest.Connect(t, srv)
	big := paddedToolEntry(t, "big", "root-1", 4000)
	next := toolEntry("Update", "case", 1) // root-1 as well
	rc := newJudgingReceiver(t, func(body []byte) int {
		if string(body) == big {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	file := toolConfig(t, srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery.retry { maxAttempts = 2, initialBackoff = 10ms, maxBackoff = 20ms } }`, rc.URL))
	stop := runSidecar(t, js, file, "siem")
	seqs := toolPublish(t, js, big, next)
	toolWait(t, 15*time.Second, "the next entry of the same key delivered", func() bool {
		_, codes := rc.answered(next)
		return len(codes) == 1 && codes[0] == http.StatusOK
	})
	stop()
	if n := deadLetterCount(t, js, "auditrelay.deadletter.siem"); n != 1 {
		t.Fatalf("%d dead letters of siem, want 1", n)
	}
	dl := natstest.LastMsg(t, js, audit.DeadLetterStream, "auditrelay.deadletter.siem")
	if got := dl.Header.Get(audit.HeaderBody); got != audit.BodyOmitted || len(dl.Data) != 0 {
		t.Errorf("dead letter %s = %q with %d bytes of body, want %q and none", audit.HeaderBody, got, len(dl.Data), audit.BodyOmitted)
	}
	f := &dlFixture{js: js, file: file}
	lines := f.listJSON(t, "-webhook", "siem")
	if len(lines) != 1 || lines[0]["streamSeq"] != float64(seqs[0]) || lines[0]["objectId"] != "big" ||
		lines[0]["operation"] != "Update" || lines[0]["lastStatus"] != "400" {
		t.Fatalf("deadletter list: %v", lines)
	}
	first, _ := rc.answered(big)
	rc.setJudge(func([]byte) int { return http.StatusOK })
	code, out, stderr := runTool(t, "deadletter", "-config", file, "redrive", "-webhook", "siem")
	if code != 0 || !strings.Contains(out, "siem: delivered 1, dead-lettered again 0, removed 1, kept 0") {
		t.Fatalf("redrive exited %d:\n%s%s", code, out, stderr)
	}
	hits, codes := rc.answered(big)
	if len(hits) != len(first)+1 || codes[len(codes)-1] != http.StatusOK || hits[len(hits)-1].id != first[0].id {
		t.Errorf("redrive: %d requests with the entry's bytes (%v), want %d, the last 200 with webhook-id %q",
			len(hits), codes, len(first)+1, first[0].id)
	}
	if n := deadLetterCount(t, js, "auditrelay.deadletter.siem"); n != 0 {
		t.Errorf("%d dead letters of siem left after the redrive", n)
	}
}

// TestDeadLetterRedriveFailingAgainKeepsOneCopy: redrives that dead-letter
// every entry again, one right after the other (well within the dead-letter
// stream's duplicate window), leave exactly one dead letter per entry, the
// newest. One entry starts with two dead letters (a redrive that stored its
// new dead letter and stopped before removing the old one); its new dead
// letter's id is that of the newer one, which JetStream answers as a
// duplicate, and that one must stay.
func TestDeadLetterRedriveFailingAgainKeepsOneCopy(t *testing.T) {
	f := newDLFixture(t)
	cfg, err := load(f.file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src, err := connectTool(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	first := f.listJSON(t, "-webhook", "siem")[0]
	streamSeq := uint64(first["streamSeq"].(float64))
	dl := audit.DeadLetter{Webhook: "siem", Reason: "HTTP 503", Attempts: 2, LastStatus: "503", StreamSeq: streamSeq, Round: 1}
	if _, err := src.PublishDeadLetter(ctx, dl, []byte(f.entries[slices.Index(f.seqs, streamSeq)])); err != nil {
		t.Fatal(err)
	}
	for _, status := range []int{http.StatusServiceUnavailable, http.StatusInternalServerError} {
		f.rc.answer("/siem", status)
		code, out, stderr := runTool(t, "deadletter", "-config", f.file, "redrive", "-webhook", "siem")
		if code != 1 || !strings.Contains(out, "siem: delivered 0, dead-lettered again 3") {
			t.Fatalf("redrive to a receiver answering %d exited %d:\n%s%s", status, code, out, stderr)
		}
		lines := f.listJSON(t, "-webhook", "siem")
		got := map[float64]int{}
		for _, l := range lines {
			got[l["streamSeq"].(float64)]++
			if l["lastStatus"] != strconv.Itoa(status) {
				t.Errorf("after a redrive answered %d: dead letter %v", status, l)
			}
		}
		if len(lines) != 3 || len(got) != 3 {
			t.Fatalf("after a redrive answered %d: %d dead letters of %d entries, want one of each of 3: %v", status, len(lines), len(got), lines)
		}
	}
}

// TestMaxAgeCountsFromRedriveAndReplay: entries older than their webhook's
// retry.maxAge get their full maxAttempts when redriven or replayed: maxAge
// counts from when the redrive or replay began, not from the entries'
// stream time.
func TestMaxAgeCountsFromRedriveAndReplay(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newToolReceiver(t, "/siem")
	rc.answer("/siem", http.StatusServiceUnavailable)
	const maxAge = 2 * time.Second
	file := toolConfig(t, srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem", delivery { orderBy = none,
  retry { maxAttempts = 3, initialBackoff = 10ms, maxBackoff = 20ms, maxAge = %s } } }`, rc.URL, maxAge))
	stop := runSidecar(t, js, file, "siem")
	seqs := toolPublish(t, js, toolEntry("Creation", "case", 0), toolEntry("Update", "case", 1))
	published := time.Now()
	toolWait(t, 10*time.Second, "two dead letters", func() bool { return deadLetterCount(t, js, "auditrelay.deadletter.siem") == 2 })
	stop()
	toolWait(t, 2*maxAge, "entries older than maxAge", func() bool { return time.Since(published) > maxAge })

	f := &dlFixture{js: js, file: file}
	before := len(rc.got("/siem"))
	code, out, stderr := runTool(t, "deadletter", "-config", file, "redrive", "-webhook", "siem")
	if code != 1 || !strings.Contains(out, "siem: delivered 0, dead-lettered again 2") {
		t.Fatalf("redrive exited %d:\n%s%s", code, out, stderr)
	}
	if n := len(rc.got("/siem")) - before; n != 6 {
		t.Errorf("redrive made %d attempts, want 3 for each of 2 entries", n)
	}
	for _, l := range f.listJSON(t, "-webhook", "siem") {
		if l["attempts"] != 3.0 || l["lastStatus"] != "503" {
			t.Errorf("dead letter after the redrive: %v", l)
		}
	}

	before = len(rc.got("/siem"))
	code, out, stderr = runTool(t, "replay", "-config", file, "-webhook", "siem", "-seq", strconv.FormatUint(seqs[0], 10))
	if code != 0 || !strings.Contains(out, "siem: replayed 0, filtered 0, dead-lettered 2") {
		t.Fatalf("replay exited %d:\n%s%s", code, out, stderr)
	}
	if n := len(rc.got("/siem")) - before; n != 6 {
		t.Errorf("replay made %d attempts, want 3 for each of 2 entries", n)
	}
	lines := f.listJSON(t, "-webhook", "siem")
	if len(lines) != 4 {
		t.Fatalf("%d dead letters after the replay, want the redrive's 2 and the replay's 2: %v", len(lines), lines)
	}
	for _, l := range lines[2:] {
		if l["attempts"] != 3.0 {
			t.Errorf("dead letter of the replay: %v", l)
		}
	}
}
