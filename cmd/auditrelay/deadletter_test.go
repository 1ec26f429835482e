package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// toolHit is one request a toolReceiver got.
type toolHit struct {
	path, id, attempt string
	body              []byte
}

// toolReceiver is a real HTTP endpoint that records every request and
// answers with the status set for its path (200 unless set), and a
// multi-line JSON error body for anything but 2xx.
type toolReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	hits   []toolHit
	status map[string]*atomic.Int32
}

func newToolReceiver(t *testing.T, paths ...string) *toolReceiver {
	rc := &toolReceiver{status: map[string]*atomic.Int32{}}
	for _, p := range paths {
		rc.status[p] = new(atomic.Int32)
		rc.status[p].Store(http.StatusOK)
	}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.hits = append(rc.hits, toolHit{r.URL.Path, r.Header.Get("webhook-id"), r.Header.Get("Auditrelay-Attempt"), body})
		rc.mu.Unlock()
		code := int(rc.status[r.URL.Path].Load())
		w.WriteHeader(code)
		if code >= 300 {
			fmt.Fprint(w, "{\n  \"error\": \"not for us\"\n}\n")
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *toolReceiver) answer(path string, code int) { rc.status[path].Store(int32(code)) }

// got returns the requests to path, in arrival order.
func (rc *toolReceiver) got(path string) []toolHit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []toolHit
	for _, h := range rc.hits {
		if h.path == path {
			out = append(out, h)
		}
	}
	return out
}

// toolWait polls cond every 20ms until it holds or limit passes.
func toolWait(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// toolConfig writes a config against srv with the given webhooks block.
func toolConfig(t *testing.T, srv *server.Server, webhooks string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "application.conf")
	conf := fmt.Sprintf(`
auditrelay {
  nats { url = "%s", stream.maxAge = 1h }
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
  log.level = warn
}
%s
`, srv.ClientURL(), webhooks)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// runTool runs a command in-process and returns its exit code and output.
func runTool(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		getenv: func(string) string { return "" }})
	if ctx.Err() != nil {
		t.Fatalf("auditrelay %s: still running after 60s", strings.Join(args, " "))
	}
	return code, stdout.String(), stderr.String()
}

// runSidecar runs `auditrelay run` in-process until stop is called (or the
// test ends), once every webhook's consumer is bound.
func runSidecar(t *testing.T, js jetstream.JetStream, file string, webhooks ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		done <- run(ctx, []string{"run", "-config", file}, &env{stdin: strings.NewReader(""), stdout: io.Discard,
			stderr: &stderr, getenv: func(string) string { return "" }})
	}()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("run exited %d:\n%s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("run did not stop within 20s")
		}
	}
	t.Cleanup(stop)
	for _, w := range append(webhooks, "_intake") {
		name := "auditrelay-" + w
		if w == "_intake" {
			name = audit.IntakeName("auditrelay")
		}
		toolWait(t, 10*time.Second, "consumer "+name, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := js.Consumer(ctx, "THEHIVE_AUDIT", name)
			return err == nil
		})
	}
	return stop
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// toolEntry is a TheHive entry; odd spacing shows that bodies are the
// published bytes.
func toolEntry(op, objectType string, n int) string {
	return fmt.Sprintf(`{"operation":%q, "objectType":%q,"objectId":"obj-%d","rootId":"root-%d","details":{"title":"entry %d"}}`,
		op, objectType, n, n%2, n)
}

// toolPublish publishes entries and returns their stream sequences.
func toolPublish(t *testing.T, js jetstream.JetStream, entries ...string) []uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var seqs []uint64
	for _, e := range entries {
		ack, err := js.Publish(ctx, "thehive.audit.case", []byte(e))
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

// deadLetterCount is how many dead letters are kept on subject.
func deadLetterCount(t *testing.T, js jetstream.JetStream, subject string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, audit.DeadLetterStream)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatalf("dead-letter stream info: %v", err)
	}
	return info.State.Subjects[subject]
}

// dlFixture is a sidecar that dead-lettered three entries of webhook siem
// (its receiver answered 400) and one invalid entry, then stopped.
type dlFixture struct {
	js      jetstream.JetStream
	file    string
	rc      *toolReceiver
	entries []string
	seqs    []uint64 // the entries' audit-stream sequences
	ids     []string // the webhook-id each entry was first sent with
	invalid uint64   // the invalid entry's sequence
}

func newDLFixture(t *testing.T) *dlFixture {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newToolReceiver(t, "/siem", "/soar")
	rc.answer("/siem", http.StatusBadRequest)
	file := toolConfig(t, srv, fmt.Sprintf(`webhooks {
  siem { url = "%s/siem", delivery { orderBy = none, retry { maxAttempts = 2, initialBackoff = 10ms, maxBackoff = 20ms } } }
  soar { url = "%s/soar" }
}`, rc.URL, rc.URL))
	stop := runSidecar(t, js, file, "siem", "soar")
	f := &dlFixture{js: js, file: file, rc: rc}
	for i := range 3 {
		f.entries = append(f.entries, toolEntry([]string{"Creation", "update", "DELETE"}[i], "case", i))
	}
	f.seqs = toolPublish(t, js, f.entries...)
	f.invalid = toolPublish(t, js, `["not", "an", "entry"]`)[0]
	toolWait(t, 10*time.Second, "three dead letters of siem and one invalid", func() bool {
		return deadLetterCount(t, js, "auditrelay.deadletter.siem") == 3 && deadLetterCount(t, js, "auditrelay.deadletter._invalid") == 1
	})
	toolWait(t, 10*time.Second, "soar's deliveries", func() bool { return len(rc.got("/soar")) == 3 })
	stop()
	f.ids = make([]string, len(f.entries))
	for _, h := range rc.got("/siem") {
		f.ids[slices.Index(f.entries, string(h.body))] = h.id
	}
	return f
}

// listJSON runs `deadletter list -json` and decodes its lines, checking
// that each has exactly the documented fields.
func (f *dlFixture) listJSON(t *testing.T, extra ...string) []map[string]any {
	t.Helper()
	code, out, stderr := runTool(t, append([]string{"deadletter", "-config", f.file, "list", "-json"}, extra...)...)
	if code != 0 {
		t.Fatalf("deadletter list -json exited %d: %s", code, stderr)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		var keys []string
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		want := "attempts lastStatus objectId objectType operation reason seq streamSeq time webhook"
		if got := strings.Join(keys, " "); got != want {
			t.Errorf("fields %s, want %s", got, want)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestDeadLetterListJSON(t *testing.T) {
	f := newDLFixture(t)
	lines := f.listJSON(t)
	if len(lines) != 4 {
		t.Fatalf("listed %d dead letters, want 4: %v", len(lines), lines)
	}
	ops := []string{"Creation", "Update", "Delete"}
	seen := map[float64]bool{}
	for _, l := range lines {
		seen[l["seq"].(float64)] = true
		tm, err := time.Parse(time.RFC3339Nano, l["time"].(string))
		if err != nil || time.Since(tm) > time.Minute || time.Since(tm) < 0 {
			t.Errorf("time %v (%v): not when the dead letter was stored", l["time"], err)
		}
		if l["webhook"] == "_invalid" {
			f.checkInvalidLine(t, l)
			continue
		}
		i := slices.Index(f.seqs, uint64(l["streamSeq"].(float64)))
		if i < 0 {
			t.Errorf("streamSeq %v is none of the published entries %v", l["streamSeq"], f.seqs)
			continue
		}
		want := map[string]any{"webhook": "siem", "operation": ops[i], "objectType": "case",
			"objectId": "obj-" + strconv.Itoa(i), "attempts": 1.0, "lastStatus": "400"}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("dead letter of entry %d: %s = %#v, want %#v", i, k, l[k], v)
			}
		}
		// The receiver's multi-line answer is in the reason, on one line.
		if r := l["reason"].(string); !strings.HasPrefix(r, "HTTP 400: {") || !strings.Contains(r, `"error": "not for us"`) ||
			strings.ContainsAny(r, "\r\n") {
			t.Errorf("dead letter of entry %d: reason %q", i, r)
		}
	}
	if len(seen) != 4 {
		t.Errorf("dead-letter sequences are not distinct: %v", seen)
	}
	siem := f.listJSON(t, "-webhook", "siem")
	if len(siem) != 3 {
		t.Errorf("-webhook siem listed %d, want 3", len(siem))
	}
	if inv := f.listJSON(t, "-webhook", "_invalid"); len(inv) != 1 || inv[0]["webhook"] != "_invalid" {
		t.Errorf("-webhook _invalid listed %v", inv)
	}
}

func (f *dlFixture) checkInvalidLine(t *testing.T, l map[string]any) {
	t.Helper()
	want := map[string]any{"streamSeq": float64(f.invalid), "attempts": nil, "lastStatus": nil,
		"reason": "not a JSON object", "operation": "", "objectType": "", "objectId": ""}
	for k, v := range want {
		if l[k] != v {
			t.Errorf("invalid entry: %s = %#v, want %#v", k, l[k], v)
		}
	}
}

func TestDeadLetterListTable(t *testing.T) {
	f := newDLFixture(t)
	code, out, stderr := runTool(t, "deadletter", "list", "-config", f.file)
	if code != 0 {
		t.Fatalf("deadletter list exited %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want a header and 4:\n%s", len(lines), out)
	}
	header := lines[0]
	for _, col := range []string{"WEBHOOK", "SEQ", "TIME", "STREAM SEQ", "OPERATION", "OBJECT TYPE", "OBJECT ID", "ATTEMPTS", "LAST STATUS", "REASON"} {
		if !strings.Contains(header, col) {
			t.Errorf("header %q lacks %s", header, col)
		}
	}
	for i, seq := range f.seqs {
		line := lineWith(lines, "obj-"+strconv.Itoa(i))
		fields := strings.Fields(line)
		// siem SEQ TIME STREAMSEQ OP TYPE ID ATTEMPTS STATUS HTTP 400: { "error": ...
		if len(fields) < 10 || fields[0] != "siem" || fields[3] != strconv.FormatUint(seq, 10) || fields[7] != "1" ||
			fields[8] != "400" || !strings.HasSuffix(line, `HTTP 400: { "error": "not for us" }`) {
			t.Errorf("entry %d: line %q", i, line)
		}
		// Aligned: every column starts where its header does.
		for _, col := range []string{"OPERATION", "OBJECT ID", "REASON"} {
			at := strings.Index(header, col)
			if at >= len(line) || line[at-1] != ' ' || line[at] == ' ' {
				t.Errorf("column %s is not aligned in %q", col, line)
			}
		}
	}
	inv := strings.Fields(lineWith(lines, "_invalid"))
	if len(inv) != 8 || inv[0] != "_invalid" || inv[3] != strconv.FormatUint(f.invalid, 10) || strings.Join(inv[4:], " ") != "not a JSON object" {
		t.Errorf("invalid entry line: %q", inv)
	}
}

func lineWith(lines []string, word string) string {
	for _, l := range lines {
		if strings.Contains(l, " "+word+" ") || strings.HasPrefix(l, word+" ") {
			return l
		}
	}
	return ""
}

// TestDeadLetterRedriveDelivers redrives to a fixed receiver: it gets the
// very bytes with the original webhook-id, and the dead letters are gone;
// the invalid entry is said to be left and stays.
func TestDeadLetterRedriveDelivers(t *testing.T) {
	f := newDLFixture(t)
	f.rc.answer("/siem", http.StatusOK)
	before := len(f.rc.got("/siem"))
	code, out, stderr := runTool(t, "deadletter", "-config", f.file, "redrive")
	if code != 0 {
		t.Fatalf("redrive exited %d:\n%s%s", code, out, stderr)
	}
	for _, want := range []string{
		"1 invalid entries are not redriven: they are not audit entries",
		"siem: delivered 3, dead-lettered again 0, removed 3, kept 0",
		"soar: no dead letters",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	got := f.rc.got("/siem")[before:]
	if len(got) != 3 {
		t.Fatalf("receiver got %d redriven requests, want 3", len(got))
	}
	for _, h := range got {
		i := slices.Index(f.entries, string(h.body))
		if i < 0 {
			t.Errorf("redriven body was never published (or was rewritten): %s", h.body)
			continue
		}
		if h.id != f.ids[i] || h.id == "" {
			t.Errorf("entry %d redriven with webhook-id %q, first sent with %q", i, h.id, f.ids[i])
		}
	}
	if n := deadLetterCount(t, f.js, "auditrelay.deadletter.siem"); n != 0 {
		t.Errorf("%d dead letters of siem left after a successful redrive", n)
	}
	if n := deadLetterCount(t, f.js, "auditrelay.deadletter._invalid"); n != 1 {
		t.Errorf("%d invalid entries kept, want 1", n)
	}
	if len(f.rc.got("/soar")) != 3 {
		t.Errorf("soar got requests from a redrive of siem")
	}
}

// TestDeadLetterRedriveFailsAgain redrives to a receiver still failing:
// each entry is dead-lettered anew (same entry, same audit sequence, new
// attempts) and only then is the old dead letter removed; nothing is lost.
func TestDeadLetterRedriveFailsAgain(t *testing.T) {
	f := newDLFixture(t)
	old := f.listJSON(t, "-webhook", "siem")
	f.rc.answer("/siem", http.StatusServiceUnavailable)
	code, out, stderr := runTool(t, "deadletter", "-config", f.file, "redrive", "-webhook", "siem")
	if code != 1 {
		t.Fatalf("redrive to a failing receiver exited %d, want 1:\n%s%s", code, out, stderr)
	}
	if !strings.Contains(out, "siem: delivered 0, dead-lettered again 3, removed 3, kept 0") ||
		!strings.Contains(stderr, "3 entries failed again and are stored as dead letters anew") {
		t.Errorf("output:\n%s%s", out, stderr)
	}
	now := f.listJSON(t, "-webhook", "siem")
	if len(now) != 3 {
		t.Fatalf("%d dead letters of siem after a failed redrive, want 3", len(now))
	}
	oldSeq := map[float64]float64{}
	for _, l := range old {
		oldSeq[l["streamSeq"].(float64)] = l["seq"].(float64)
	}
	for _, l := range now {
		prev, ok := oldSeq[l["streamSeq"].(float64)]
		if !ok || l["seq"].(float64) <= prev || l["lastStatus"] != "503" || l["attempts"] != 2.0 {
			t.Errorf("dead letter after redrive: %v (before: seq %v)", l, prev)
		}
	}
	for _, h := range f.rc.got("/siem") {
		if i := slices.Index(f.entries, string(h.body)); i < 0 || h.id != f.ids[i] {
			t.Errorf("request with body %s and webhook-id %q", h.body, h.id)
		}
	}
}

func TestDeadLetterUsage(t *testing.T) {
	for _, args := range [][]string{
		{"deadletter", "-config", "x.conf"},
		{"deadletter", "-config", "x.conf", "purge"},
		{"deadletter", "-config", "x.conf", "list", "extra"},
		{"deadletter", "list", "-nosuchflag"},
	} {
		if code, _, stderr := runTool(t, args...); code != 2 {
			t.Errorf("%v exited %d, want 2: %s", args, code, stderr)
		}
	}
	srv := natstest.Start(t)
	file := toolConfig(t, srv, `webhooks { siem { url = "http://127.0.0.1:1/" } }`)
	code, _, stderr := runTool(t, "deadletter", "-config", file, "redrive", "-webhook", "_invalid")
	if code != 2 || !strings.Contains(stderr, "invalid entries are not redriven") {
		t.Errorf("redrive -webhook _invalid exited %d: %s", code, stderr)
	}
	code, _, stderr = runTool(t, "deadletter", "-config", file, "redrive", "-webhook", "nope")
	if code != 2 || !strings.Contains(stderr, `no webhook "nope"`) {
		t.Errorf("redrive -webhook nope exited %d: %s", code, stderr)
	}
	code, out, stderr := runTool(t, "deadletter", "-config", file, "list")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("list without a dead-letter stream exited %d:\n%s%s", code, out, stderr)
	}
}
