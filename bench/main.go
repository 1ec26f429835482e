// Command bench measures auditrelay against the bare loop, side by side in
// one run, on loopback (issue 7):
//
//	go run ./bench                      # throughput + latency, 3 runs each
//	go run ./bench -entries 20000 -runs 5
//	go run ./bench -only formats        # format = audit against HEC batches of 50
//
// The parent process holds the NATS server, the counting receivers and the
// publisher; the measured consumer — auditrelay, or the bare loop — runs as
// a child process, whose CPU time and peak RSS come from /proc. Figures are
// medians over -runs, and ratios against the bare loop of the same run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sort"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		os.Exit(runBare(os.Args[2:]))
	}
	os.Exit(runBench(os.Args[1:]))
}

type options struct {
	entries, webhooks, runs int
	rate                    int
	steady                  time.Duration
	tls, h2                 bool
	which                   string
}

func runBench(args []string) int {
	// The bench process holds the NATS server, the publisher and the
	// receivers: its own GC pauses would show up as delivery latency of
	// whichever consumer is measured. It collects less often. GOGC is set
	// here, not in the environment, so the measured processes run as they
	// would in production: auditrelay with its own collector floor.
	debug.SetGCPercent(400)
	var o options
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.IntVar(&o.entries, "entries", 100000, "entries in the backlog of the throughput test")
	fs.IntVar(&o.webhooks, "webhooks", 4, "webhooks (plain HTTP receivers)")
	fs.IntVar(&o.runs, "runs", 3, "runs of each measurement; figures are medians")
	fs.IntVar(&o.rate, "rate", 1000, "entries/s of the latency test")
	fs.DurationVar(&o.steady, "steady", 10*time.Second, "duration of the latency test")
	fs.BoolVar(&o.tls, "tls", false, "HTTPS receivers (TLS 1.3) instead of plain HTTP")
	fs.BoolVar(&o.h2, "h2", false, "with -tls: the receivers offer HTTP/2")
	fs.IntVar(&entryBytes, "entry-bytes", 0, "pad every entry to about this many bytes (default: about 1.5 KB)")
	fs.BoolVar(&relayOnly, "relay-only", false, "measure auditrelay alone, without the bare loops")
	fs.StringVar(&o.which, "only", "", "throughput | latency | startup | down | formats (default: throughput and latency)")
	_ = fs.Parse(args)
	bins, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(filepath.Dir(bins.relay))
	ctx := context.Background()
	if o.which == "" || o.which == "throughput" {
		if err := throughputTable(ctx, bins, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if o.which == "" || o.which == "latency" {
		if err := latencyTable(ctx, bins, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if o.which == "down" {
		if err := downTable(ctx, bins, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if o.which == "formats" {
		if err := formatsTable(ctx, bins, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	if o.which == "startup" {
		if err := startupTable(bins, o); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	return 0
}

// binaries are the measured programs, built once.
type binaries struct{ relay, bench string }

func build() (binaries, error) {
	dir, err := os.MkdirTemp("", "auditrelay-bench")
	if err != nil {
		return binaries{}, err
	}
	b := binaries{relay: filepath.Join(dir, "auditrelay"), bench: filepath.Join(dir, "bench")}
	for pkg, out := range map[string]string{"./cmd/auditrelay": b.relay, "./bench": b.bench} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		if msg, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return b, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
