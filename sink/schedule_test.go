package sink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
