package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// gcHeadroom is how far the heap may grow past what the last garbage
// collection found live before the next one starts, at least, while
// little is live.
const gcHeadroom = 16 << 20

// setGC keeps the next garbage collection at least gcHeadroom of heap
// away, unless GOGC or GOMEMLIMIT is set. Go's default lets the heap
// double, from 4 MiB: at a steady 1,000 entries/s the sidecar keeps about
// 3 MB live, so it collected every 90 ms, each collection taking its one
// CPU for about 2 ms, and the entries that came meanwhile waited: that
// was its p99. With the headroom it collects about every half second.
// With a backlog to drain it keeps 12 MB live or more, where the doubling
// gives about as much, and the heap's peak stays where Go's default puts
// it (see docs/performance.md).
//
// It is set anew after each collection, from the heap that collection
// found live (gcPercentFor).
func setGC(getenv func(string) string) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var last int
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

// gcPercentFor is the GOGC that starts the next collection gcHeadroom
// above live: Go starts it at live × (1 + GOGC/100), and never under
// 4 MiB × GOGC/100. That floor is why it is never over 400 (the heap
// would start at 16 MiB × GOGC/400 however little is live: at 16 MiB
// with 400), and never under Go's 100, where the doubling gives more.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return 400
	}
	return min(400, max(100, int((gcHeadroom*100+live-1)/live)))
}

func abs(n int) int { return max(n, -n) }

// gcCycle is allocated to die in the next garbage collection; its
// pointer keeps it out of the tiny allocator, whose blocks may outlive it.
type gcCycle struct{ _ *byte }

// onNextGC calls f once, after the next garbage collection.
func onNextGC(f func()) {
	runtime.AddCleanup(new(gcCycle), func(f func()) { f() }, f)
}
