package main

import "runtime"

// setProcs runs Go code on half the CPUs the process may use (Go counts a
// container's CPU limit), at least one, unless GOMAXPROCS is set. The
// sidecar's work is many small hand-overs (from the pull to the scheduler
// to a request, and back) and waits on the network: with every CPU it
// spends more on waking goroutines on other CPUs and on idle ones looking
// for work than it gains, while the application it sits beside needs the
// CPUs too. On 2 CPUs, one gives more entries per CPU-second draining a
// backlog and a lower p99 at a steady 1,000 entries/s; in a busy hour the
// second CPU buys some entries per second for a few per CPU-second (the
// figures, each as measured: docs/performance.md, "Half the CPUs").
func setProcs(getenv func(string) string) {
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procsFor(runtime.GOMAXPROCS(0)))
	}
}

// procsFor is half of available, at least one.
func procsFor(available int) int { return max(1, available/2) }
