package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// intakeCounts counts what an intake reports.
type intakeCounts struct{ received, invalid atomic.Int64 }

func (c *intakeCounts) Received() { c.received.Add(1) }
func (c *intakeCounts) Invalid()  { c.invalid.Add(1) }

// logBuffer is a log destination tests read while the code writes.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// intakeSource is a Source on srv, its streams created, its intake running
// until the test ends, with what it counted and logged.
func intakeSource(t *testing.T, srv *server.Server, maxEntryBytes int64) (*audit.Source, *intakeCounts, *logBuffer) {
	t.Helper()
	cfg := config.Default().NATS
	cfg.URL, cfg.MaxEntryBytes = srv.ClientURL(), maxEntryBytes
	logs := &logBuffer{}
	src, err := audit.Connect(cfg, audit.Options{DeadLetterSubject: "auditrelay.deadletter",
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	ensure(t, src)
	ctx, cancel := context.WithCancel(context.Background())
	in, err := src.Intake(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := &intakeCounts{}
	done := make(chan struct{})
	go func() { defer close(done); _ = in.Run(ctx, counts) }()
	t.Cleanup(func() { cancel(); <-done })
	return src, counts, logs
}

func ensure(t *testing.T, src *audit.Source) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for src.Ensure(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("streams not created within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitUntil polls cond every 20ms until it holds or limit passes.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// paddedEntry is a valid entry of exactly size bytes.
func paddedEntry(t *testing.T, id string, size int) []byte {
	t.Helper()
	head := fmt.Sprintf(`{"operation":"Creation","objectType":"case","objectId":%q,"details":{"pad":"`, id)
	tail := `"}}`
	if n := size - len(head) - len(tail); n > 0 {
		return []byte(head + strings.Repeat("x", n) + tail)
	}
	t.Fatalf("size %d too small", size)
	return nil
}

// TestIntakeStoresAnOversizedInvalidEntryWithoutItsBody: with max_payload
// above maxEntryBytes, an entry too large to be valid but too large also
// for its dead letter's headers is stored once without its body, instead
// of being retried for ever.
func TestIntakeStoresAnOversizedInvalidEntryWithoutItsBody(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = 4096 })
	_, js := natstest.Connect(t, srv)
	_, counts, _ := intakeSource(t, srv, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	big := paddedEntry(t, "big", 4060)
	ack, err := js.Publish(ctx, "thehive.audit.case", big)
	if err != nil {
		t.Fatal(err)
	}
	var dl *jetstream.RawStreamMsg
	waitUntil(t, 10*time.Second, "the dead letter of the oversized entry", func() bool {
		dl = natstest.LastMsg(t, js, audit.DeadLetterStream, "auditrelay.deadletter._invalid")
		return dl != nil
	})
	if got := dl.Header.Get(audit.HeaderBody); got != audit.BodyOmitted || len(dl.Data) != 0 {
		t.Errorf("dead letter %s = %q with %d bytes of body, want %q and none", audit.HeaderBody, got, len(dl.Data), audit.BodyOmitted)
	}
	if got := dl.Header.Get(audit.HeaderStreamSeq); got != strconv.FormatUint(ack.Sequence, 10) {
		t.Errorf("dead letter %s = %q, want %d", audit.HeaderStreamSeq, got, ack.Sequence)
	}
	if r := dl.Header.Get(audit.HeaderReason); !strings.Contains(r, "maxEntryBytes") {
		t.Errorf("reason %q", r)
	}
	if r, i := counts.received.Load(), counts.invalid.Load(); r != 1 || i != 1 {
		t.Errorf("counted received %d, invalid %d; want 1 and 1", r, i)
	}
}

// TestIntakeCountsEachEntryOnce: an invalid entry whose dead letter cannot
// be stored for a while is redelivered to the intake several times; it is
// counted as received and invalid once, and stored once the dead-letter
// stream is back.
func TestIntakeCountsEachEntryOnce(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	src, counts, logs := intakeSource(t, srv, 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := js.DeleteStream(ctx, audit.DeadLetterStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "thehive.audit.case", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the invalid entry handled three times", func() bool {
		return logs.count("invalid entry not dead-lettered yet") >= 3
	})
	ensure(t, src)
	waitUntil(t, 10*time.Second, "the invalid entry dead-lettered", func() bool {
		return natstest.LastMsg(t, js, audit.DeadLetterStream, "auditrelay.deadletter._invalid") != nil
	})
	if r, i := counts.received.Load(), counts.invalid.Load(); r != 2 || i != 1 {
		t.Errorf("counted received %d, invalid %d; want 2 and 1", r, i)
	}
}
