package backoff

import (
	"errors"
	"testing"
	"time"
)

func TestNextDoublesUpToMax(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d = %s, want %s", i, got, w*time.Millisecond)
		}
	}
}

func TestSleepEndsWhenDone(t *testing.T) {
	done := make(chan struct{})
	close(done)
	if Sleep(done, time.Hour) {
		t.Fatal("Sleep waited out an hour although done was closed")
	}
	if !Sleep(make(chan struct{}), time.Millisecond) {
		t.Fatal("Sleep reported done for an open channel")
	}
}

func TestRetryUntilSuccessOrDone(t *testing.T) {
	var failures []time.Duration
	tries := 0
	ok := Retry(make(chan struct{}), New(time.Millisecond, 2*time.Millisecond), func() error {
		if tries++; tries < 4 {
			return errors.New("not yet")
		}
		return nil
	}, func(_ error, wait time.Duration) { failures = append(failures, wait) })
	if !ok || tries != 4 || len(failures) != 3 || failures[2] != 2*time.Millisecond {
		t.Fatalf("ok %v after %d tries, waits %v; want success on the 4th, waits 1ms 2ms 2ms", ok, tries, failures)
	}
	done := make(chan struct{})
	close(done)
	if Retry(done, New(time.Hour, time.Hour), func() error { return errors.New("never") }, func(error, time.Duration) {}) {
		t.Fatal("Retry reported success although every try failed and done was closed")
	}
}
