package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// replayFixture is a sidecar that delivered five entries (four cases, one
// case_task) to siem, soar and cases (which takes only cases), then
// stopped.
type replayFixture struct {
	js      jetstream.JetStream
	file    string
	rc      *toolReceiver
	entries []string
	seqs    []uint64
	ids     map[string]string // body => webhook-id of its first delivery to siem
}

func newReplayFixture(t *testing.T) *replayFixture {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newToolReceiver(t, "/siem", "/soar", "/cases")
	file := toolConfig(t, srv, fmt.Sprintf(`webhooks {
  siem { url = "%s/siem" }
  soar { url = "%s/soar" }
  cases { url = "%s/cases", filter.objectTypes = [case] }
}`, rc.URL, rc.URL, rc.URL))
	stop := runSidecar(t, js, file, "siem", "soar", "cases")
	f := &replayFixture{js: js, file: file, rc: rc, ids: map[string]string{}}
	for i := range 5 {
		typ := "case"
		if i == 3 {
			typ = "case_task"
		}
		f.entries = append(f.entries, toolEntry("Update", typ, i))
	}
	f.seqs = toolPublish(t, js, f.entries...)
	toolWait(t, 10*time.Second, "first deliveries", func() bool {
		return len(rc.got("/siem")) == 5 && len(rc.got("/soar")) == 5 && len(rc.got("/cases")) == 4
	})
	stop()
	for _, h := range rc.got("/siem") {
		f.ids[string(h.body)] = h.id
	}
	return f
}

// consumerState is what replay must not change of a durable consumer.
func (f *replayFixture) consumerState(t *testing.T, name string) string {
	t.Helper()
	i := consumerInfo(f.js, name)
	if i == nil {
		t.Fatalf("consumer %s: no info", name)
	}
	return fmt.Sprintf("delivered %d/%d ackfloor %d/%d pending %d ackpending %d redelivered %d",
		i.Delivered.Consumer, i.Delivered.Stream, i.AckFloor.Consumer, i.AckFloor.Stream, i.NumPending, i.NumAckPending, i.NumRedelivered)
}

// consumers lists the audit stream's consumers.
func (f *replayFixture) consumers(t *testing.T) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range st.ConsumerNames(ctx).Name() {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// replay runs `auditrelay replay` and checks its exit code and summary.
func (f *replayFixture) replay(t *testing.T, summary string, args ...string) {
	t.Helper()
	code, out, stderr := runTool(t, append([]string{"replay", "-config", f.file}, args...)...)
	if code != 0 {
		t.Fatalf("replay %v exited %d:\n%s%s", args, code, out, stderr)
	}
	if !strings.Contains(out, summary) {
		t.Errorf("replay %v printed %q, want %q", args, out, summary)
	}
}

// checkReplayed checks that path got exactly entries[from:] again, after
// the first n requests, byte for byte and with their first webhook-ids.
func (f *replayFixture) checkReplayed(t *testing.T, path string, n int, want []string) {
	t.Helper()
	got := f.rc.got(path)[n:]
	var bodies []string
	for _, h := range got {
		bodies = append(bodies, string(h.body))
		if id, ok := f.ids[string(h.body)]; path == "/siem" && (!ok || h.id != id) {
			t.Errorf("%s: replayed with webhook-id %q, first delivered with %q", path, h.id, id)
		}
	}
	slices.Sort(bodies)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(bodies, want) {
		t.Errorf("%s got again:\n%s\nwant:\n%s", path, strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
}

func TestReplayFromSeq(t *testing.T) {
	f := newReplayFixture(t)
	siem, soar := f.consumerState(t, "auditrelay-siem"), f.consumerState(t, "auditrelay-soar")
	consumers := f.consumers(t)
	f.replay(t, "siem: replayed 3, filtered 0, dead-lettered 0", "-webhook", "siem", "-seq", fmt.Sprint(f.seqs[2]))
	f.checkReplayed(t, "/siem", 5, f.entries[2:])
	if n := len(f.rc.got("/soar")); n != 5 {
		t.Errorf("soar got %d requests, want its 5 first deliveries only", n)
	}
	if got := f.consumerState(t, "auditrelay-siem"); got != siem {
		t.Errorf("siem's durable consumer changed:\n got %s\nwant %s", got, siem)
	}
	if got := f.consumerState(t, "auditrelay-soar"); got != soar {
		t.Errorf("soar's durable consumer changed:\n got %s\nwant %s", got, soar)
	}
	if got := f.consumers(t); !slices.Equal(got, consumers) {
		t.Errorf("consumers after replay %v, before %v: the replay's was not removed", got, consumers)
	}
}

// TestReplaySinceIsInclusive replays from the exact stream time of the
// second entry: it is replayed, the first is not.
func TestReplaySinceIsInclusive(t *testing.T) {
	f := newReplayFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := f.js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, f.seqs[1])
	if err != nil {
		t.Fatal(err)
	}
	since := m.Time.Format(time.RFC3339Nano)
	f.replay(t, "siem: replayed 4, filtered 0, dead-lettered 0", "-webhook", "siem", "-since", since)
	f.checkReplayed(t, "/siem", 5, f.entries[1:])
	f.replay(t, "siem: replayed 0, filtered 0, dead-lettered 0", "-webhook", "siem", "-since", time.Now().Add(time.Hour).Format(time.RFC3339))
	if n := len(f.rc.got("/siem")); n != 9 {
		t.Errorf("siem got %d requests after a replay from the future, want 9", n)
	}
}

// TestReplayFilters replays with the webhook's filter: the case_task entry
// is counted as filtered and not sent.
func TestReplayFilters(t *testing.T) {
	f := newReplayFixture(t)
	f.replay(t, "cases: replayed 4, filtered 1, dead-lettered 0", "-webhook", "cases", "-seq", "1")
	f.checkReplayed(t, "/cases", 4, slices.Delete(slices.Clone(f.entries), 3, 4))
}

func TestReplayDeadLetters(t *testing.T) {
	f := newReplayFixture(t)
	f.rc.answer("/soar", 422)
	f.replay(t, "soar: replayed 0, filtered 0, dead-lettered 2", "-webhook", "soar", "-seq", fmt.Sprint(f.seqs[3]))
	if n := deadLetterCount(t, f.js, "auditrelay.deadletter.soar"); n != 2 {
		t.Errorf("%d dead letters of soar, want 2", n)
	}
}

func TestReplayUsage(t *testing.T) {
	srv := natstest.Start(t)
	file := toolConfig(t, srv, `webhooks {
  siem { url = "http://127.0.0.1:1/" }
  off { url = "http://127.0.0.1:1/", enabled = false }
}`)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-seq", "1"}, "replay needs -webhook NAME"},
		{[]string{"-webhook", "siem"}, "exactly one of -since TIME and -seq N"},
		{[]string{"-webhook", "siem", "-seq", "1", "-since", "2024-01-01T00:00:00Z"}, "exactly one of"},
		{[]string{"-webhook", "siem", "-since", "yesterday"}, `-since "yesterday" is not an RFC 3339 time`},
		{[]string{"-webhook", "nope", "-seq", "1"}, `no webhook "nope"`},
		{[]string{"-webhook", "off", "-seq", "1"}, `webhook "off" is disabled`},
		{[]string{"-webhook", "siem", "-seq", "1", "extra"}, "replay takes no arguments"},
	} {
		code, _, stderr := runTool(t, append([]string{"replay", "-config", file}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("replay %v exited %d, want 2 and %q:\n%s", tc.args, code, tc.want, stderr)
		}
	}
}

// TestToolsNeedTheEmbeddedServer: with the embedded server enabled and not
// running, the commands say so at once.
func TestToolsNeedTheEmbeddedServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	file := filepath.Join(t.TempDir(), "application.conf")
	conf := fmt.Sprintf(`auditrelay.nats.embedded { enabled = true, listen = "%s", storeDir = "data" }
webhooks.siem.url = "http://127.0.0.1:1/"
`, addr)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("the embedded NATS server (auditrelay.nats.embedded.listen = %s) is not running", addr)
	for _, args := range [][]string{
		{"replay", "-config", file, "-webhook", "siem", "-seq", "1"},
		{"deadletter", "-config", file, "list"},
	} {
		start := time.Now()
		code, _, stderr := runTool(t, args...)
		if code != 1 || !strings.Contains(stderr, want) || time.Since(start) > 5*time.Second {
			t.Errorf("%v exited %d after %v:\n%s", args, code, time.Since(start), stderr)
		}
	}
}

// TestToolsNeverPrintNATSSecrets: an unreachable NATS is named without the
// password of its URL.
func TestToolsNeverPrintNATSSecrets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	file := filepath.Join(t.TempDir(), "application.conf")
	conf := fmt.Sprintf(`auditrelay.nats.url = "nats://relay:s3cr3t-pw@%s"
webhooks.siem.url = "http://127.0.0.1:1/"
`, addr)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runTool(t, "deadletter", "-config", file, "list")
	if code != 1 || !strings.Contains(stderr, "not reachable") || strings.Contains(out+stderr, "s3cr3t") {
		t.Errorf("exited %d:\n%s%s", code, out, stderr)
	}
}
