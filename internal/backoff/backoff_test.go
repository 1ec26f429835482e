package backoff

import (
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
