package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// downTable: every endpoint answers 503 while a backlog of o.entries is
// published; the sidecar's RSS is sampled throughout. The backlog must stay
// in JetStream, so RSS stays flat however many entries wait.
func downTable(ctx context.Context, b binaries, o options) error {
	var peaks, firsts []float64
	for i := range o.runs {
		first, peak, err := down(ctx, b, o)
		if err != nil {
			return fmt.Errorf("down run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "  down run %d: RSS %.1f MB after 1,000 entries, peak %.1f MB after %d\n", i+1, first, peak, o.entries)
		firsts, peaks = append(firsts, first), append(peaks, peak)
	}
	fmt.Printf("endpoint down, %d entries waiting (median of %d): RSS %.1f MB after 1,000, peak %.1f MB\n",
		o.entries, o.runs, median(firsts), median(peaks))
	return nil
}

func down(ctx context.Context, b binaries, o options) (first, peak float64, err error) {
	e, err := newEnv(ctx, o.webhooks, o.entries, false, false)
	if err != nil {
		return 0, 0, err
	}
	defer e.close()
	for _, r := range e.recvs {
		r.failing.Store(true)
	}
	p, err := e.startRelay(b.relay, "")
	if err != nil {
		return 0, 0, err
	}
	defer p.stop()
	if err := until(30*time.Second, p.ready); err != nil {
		return 0, 0, err
	}
	if err := e.publish(ctx, 0, 1000, false); err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second)
	first = sample(p.cmd.Process.Pid).rssMB
	for from := 1000; from < o.entries; from += 10000 {
		if err := e.publish(ctx, from, min(from+10000, o.entries), false); err != nil {
			return 0, 0, err
		}
	}
	time.Sleep(5 * time.Second)
	return first, sample(p.cmd.Process.Pid).rssMB, nil
}
