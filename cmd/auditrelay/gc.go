package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// gcFloor is the heap the garbage collector lets grow before it collects,
// however little is live; Go's own is 4 MiB.
const gcFloor = 16 << 20

// setGC starts each garbage collection at gcFloor of heap, or at twice
// what is live once that is more (Go's default: the heap doubles), unless
// GOGC or GOMEMLIMIT is set. At a steady 1,000 entries/s the sidecar keeps
// about 3 MB live: with Go's default it collected every 90 ms, each
// collection taking its one CPU for about 2 ms, and the entries that came
// meanwhile waited: that was its p99. With the floor it collects about
// every half second. With a backlog to drain it keeps 12 MB live or more,
// where Go's default applies, and the heap's peak stays where it puts it
// (see docs/performance.md).
//
// Go has no setting for the floor: GOGC is set anew after each collection,
// from the heap that collection found live (gcPercentFor).
func setGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	last := 100
	var tune func()
	tune = func() {
		metrics.Read(sample)
		// A change of a tenth or less is let be: the live heap moves a
		// little with every collection.
		if p := gcPercentFor(sample[0].Value.Uint64()); abs(p-last) > last/10 {
			debug.SetGCPercent(p)
			last = p
		}
		onNextGC(tune)
	}
	tune()
}

// gcPercentFor is the GOGC that starts the next collection at gcFloor, or
// at twice live once that is more. Go starts it at live × (1 + GOGC/100),
// and never under 4 MiB × GOGC/100: with GOGC at 400, its most, that is
// gcFloor however little is live.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 400
	}
	return min(400, max(100, int(((gcFloor-min(live, gcFloor))*100+live-1)/live)))
}

func abs(n int) int { return max(n, -n) }

// gcCycle is allocated to die in the next garbage collection; its
// pointer keeps it out of the tiny allocator, whose blocks may outlive it.
type gcCycle struct{ _ *byte }

// onNextGC calls f once, after the next garbage collection.
func onNextGC(f func()) {
	runtime.AddCleanup(new(gcCycle), func(f func()) { f() }, f)
}
