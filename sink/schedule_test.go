package sink

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/audit"
)

// sliceFeed hands out a fixed list of entries, then blocks until Drain or
// Stop. It stands in for a consumer whose JetStream redelivers an entry:
// the same sequence, a second time, as after a reconnect or an expired ack.
type sliceFeed struct {
	msgs   chan *audit.Message
	closed chan struct{}
	once   sync.Once
}

func newSliceFeed(msgs ...*audit.Message) *sliceFeed {
	f := &sliceFeed{msgs: make(chan *audit.Message, len(msgs)), closed: make(chan struct{})}
	for _, m := range msgs {
		f.msgs <- m
	}
	return f
}

func (f *sliceFeed) Next() (*audit.Message, error) {
	select {
	case m := <-f.msgs:
		return m, nil
	case <-f.closed:
		return nil, audit.ErrClosed
	}
}

func (f *sliceFeed) Drain() { f.once.Do(func() { close(f.closed) }) }
func (f *sliceFeed) Stop()  { f.Drain() }

// TestRedeliveryDuringDeliveryIsRaceFree: an entry redelivered while its
// first attempt is in flight replaces the held entry's handle on the
// scheduler's goroutine while the delivery goroutine works from the unit's
// own list, with no data race (run under -race), and the entry is still
// delivered once.
func TestRedeliveryDuringDeliveryIsRaceFree(t *testing.T) {
	inFlight := make(chan struct{})
	release := make(chan struct{})
	var mu sync.Mutex
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		first := len(bodies) == 1
		mu.Unlock()
		if first {
			close(inFlight)
			<-release
		}
	}))
	defer srv.Close()
	w, err := New(*testWebhook(srv.URL), Options{Stream: "S"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	raw := `{"operation":"Creation","objectType":"case","objectId":"c1","rootId":"c1"}`
	first := mustDecodeMessage(t, raw, 7)
	again := mustDecodeMessage(t, raw, 7)
	feed := newSliceFeed(first)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, feed) }()

	select {
	case <-inFlight:
	case <-time.After(10 * time.Second):
		t.Fatal("first attempt never arrived")
	}
	feed.msgs <- again // the redelivered copy, while the attempt is in flight
	// A second entry behind it shows the scheduler took the copy in.
	feed.msgs <- mustDecodeMessage(t, `{"operation":"Update","objectType":"case","objectId":"c2","rootId":"c2"}`, 8)
	waitUntil(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) == 2 })
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) != 2 || bodies[0] != raw {
		t.Fatalf("deliveries = %q, want the entry once, then entry 8", bodies)
	}
}

func waitUntil(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHeldBytesBound: entries of 1 MiB are taken from the feed only while
// what the webhook holds is under MaxHeldBytes, whatever maxInFlight and
// MaxAckPending allow; every entry is still delivered.
func TestHeldBytesBound(t *testing.T) {
	const n, size = 16, 1 << 20
	var mu sync.Mutex
	inflight, most, done := 0, 0, 0
	release, stop := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		select {
		case <-release:
		case <-stop:
		}
		mu.Lock()
		inflight--
		done++
		mu.Unlock()
	}))
	defer srv.Close()
	defer close(stop) // before srv.Close, so no handler stays blocked
	w, err := New(*testWebhook(srv.URL), Options{Stream: "S"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pad := strings.Repeat("x", size)
	var msgs []*audit.Message
	for i := range n {
		raw := fmt.Sprintf(`{"operation":"Update","objectType":"case","objectId":"c%d","rootId":"r%d","details":{"d":%q}}`, i, i, pad)
		msgs = append(msgs, mustDecodeMessage(t, raw, uint64(i+1)))
	}
	feed := newSliceFeed(msgs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- w.Run(ctx, feed) }()
	// Entries are taken while less than MaxHeldBytes is held: the one
	// that crosses it is the last.
	limit := (MaxHeldBytes + size - 1) / size
	waitUntil(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return inflight == limit })
	for i := range n {
		release <- struct{}{}
		waitUntil(t, 10*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return done == i+1 })
	}
	mu.Lock()
	got := most
	mu.Unlock()
	if got > limit {
		t.Fatalf("%d entries of 1 MiB were in flight at once; MaxHeldBytes allows %d", got, limit)
	}
	cancel()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
}
