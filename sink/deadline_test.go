package sink

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A delivery goroutine keeps one deadline for all its attempts. Each
// attempt gets the whole of timeout.request, however many came before it;
// one that runs out is a timeout, and the attempt after it is not cut
// short by the context that ran out.
func TestDeadlineBoundsEachAttemptAfresh(t *testing.T) {
	pause := make(chan time.Duration, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then r's context ends when the client hangs up
		select {
		case d := <-pause:
			select {
			case <-time.After(d):
			case <-r.Context().Done():
			}
		default:
		}
	}))
	t.Cleanup(srv.Close)
	wh := testWebhook(srv.URL)
	wh.WS.Timeout.Request = 400 * time.Millisecond
	w, err := New(*wh, Options{Stream: "THEHIVE_AUDIT", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	d := w.deadline(t.Context())
	defer d.close()
	try := func(wait time.Duration) Result {
		pause <- wait
		return w.attemptWithin(d, "THEHIVE_AUDIT.siem.1", []byte(`{}`), 1)
	}
	// Three attempts of 250 ms each: 750 ms in all, within 400 ms each.
	for i := range 3 {
		if res := try(250 * time.Millisecond); res.Outcome != Delivered {
			t.Fatalf("attempt %d of 250 ms: got %v %q %v, want delivered within 400 ms", i+1, res.Outcome, res.Status, res.Err)
		}
	}
	start := time.Now()
	res := try(2 * time.Second)
	if res.Status != kindTimeout || res.Outcome != Retry {
		t.Fatalf("attempt of 2 s: got %v %q %v, want a timeout to retry", res.Outcome, res.Status, res.Err)
	}
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Fatalf("attempt of 2 s ended after %v, want at about 400 ms", took)
	}
	if res := try(0); res.Outcome != Delivered {
		t.Fatalf("attempt after a timeout: got %v %q %v, want delivered", res.Outcome, res.Status, res.Err)
	}
}

// An attempt's context reads as a context.WithTimeout's would: its own
// deadline, context.DeadlineExceeded once it runs out, context.Canceled
// when its parent ends first.
func TestAttemptContextIsATimeout(t *testing.T) {
	d := &deadline{parent: context.Background(), limit: 50 * time.Millisecond}
	before := time.Now()
	ctx := d.start()
	if end, ok := ctx.Deadline(); !ok || end.Before(before.Add(50*time.Millisecond)) || end.After(time.Now().Add(50*time.Millisecond)) {
		t.Errorf("Deadline() = %v, %v; want 50 ms after start", end, ok)
	}
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Errorf("ran out: Err %v, Cause %v; want context.DeadlineExceeded", ctx.Err(), context.Cause(ctx))
	}
	d.stop()
	if ctx := d.start(); ctx.Err() != nil {
		t.Errorf("the attempt after one that ran out starts with %v", ctx.Err())
	}
	d.stop()

	parent, cancel := context.WithCancel(context.Background())
	d = &deadline{parent: parent, limit: time.Hour}
	ctx = d.start()
	cancel()
	<-ctx.Done()
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("parent ended: Err %v, want context.Canceled", ctx.Err())
	}
	d.stop()
	if ctx := d.start(); !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("after the parent ended, an attempt starts with %v, want context.Canceled", ctx.Err())
	}
	d.close()
}
