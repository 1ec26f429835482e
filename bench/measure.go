package main

import (
	"bufio"
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one run of one consumer.
type result struct {
	entriesPerSec, deliveriesPerSec float64
	perCPUSecond                    float64
	cpu                             time.Duration
	rssMB                           float64
	lost, dup                       int
	conns                           int64
	perPost                         float64 // entries a request carries
	p50, p99, max                   time.Duration
}

// throughput drains a backlog of o.entries with the consumer that start
// makes, and measures it.
func throughput(ctx context.Context, o options, start func(*env) (*proc, error)) (result, error) {
	e, err := newEnv(ctx, o.webhooks, o.entries, o.tls, o.h2)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	if err := e.publish(ctx, 0, o.entries, false); err != nil {
		return result{}, err
	}
	t0 := time.Now()
	p, err := start(e)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	want := int64(o.entries * o.webhooks)
	if err := until(10*time.Minute, func() bool { return e.delivered() >= want }); err != nil {
		return result{}, fmt.Errorf("%d of %d deliveries: %w", e.delivered(), want, err)
	}
	elapsed := time.Since(t0)
	r := sample(p.cmd.Process.Pid)
	r.entriesPerSec = float64(o.entries) / elapsed.Seconds()
	r.deliveriesPerSec = float64(want) / elapsed.Seconds()
	r.perCPUSecond = float64(o.entries) / r.cpu.Seconds()
	time.Sleep(500 * time.Millisecond) // late duplicates
	r.lost, r.dup, r.conns = e.tally(o.entries)
	r.perPost = e.perPost()
	return r, nil
}

// latency publishes at o.rate for o.steady against a ready consumer.
func latency(ctx context.Context, o options, start func(*env) (*proc, error)) (result, error) {
	n := o.rate * int(o.steady.Seconds())
	e, err := newEnv(ctx, o.webhooks, n, o.tls, o.h2)
	if err != nil {
		return result{}, err
	}
	defer e.close()
	p, err := start(e)
	if err != nil {
		return result{}, err
	}
	defer p.stop()
	if err := until(30*time.Second, p.ready); err != nil {
		return result{}, fmt.Errorf("consumer not ready: %w", err)
	}
	if err := e.steady(ctx, o.rate, n); err != nil {
		return result{}, err
	}
	want := int64(n * o.webhooks)
	if err := until(time.Minute, func() bool { return e.delivered() >= want }); err != nil {
		return result{}, fmt.Errorf("%d of %d deliveries: %w", e.delivered(), want, err)
	}
	r := sample(p.cmd.Process.Pid)
	r.lost, r.dup, r.conns = e.tally(n)
	r.p50, r.p99, r.max = e.percentiles()
	return r, nil
}

// steady publishes n entries at rate per second, in 10 ms ticks.
func (e *env) steady(ctx context.Context, rate, n int) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for sent := 0; sent < n; {
		<-tick.C
		due := min(n, int(time.Since(start).Seconds()*float64(rate)))
		for ; sent < due; sent++ {
			if _, err := e.js.PublishAsync("thehive.audit.case_task", entry(sent, time.Now().UnixNano())); err != nil {
				return err
			}
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *env) tally(n int) (lost, dup int, conns int64) {
	for _, r := range e.recvs {
		l, d := r.lostDup(n)
		lost, dup, conns = lost+l, dup+d, conns+r.conns.Load()
	}
	return lost, dup, conns
}

// perPost is how many entries a request carried, on average.
func (e *env) perPost() float64 {
	var posts int64
	for _, r := range e.recvs {
		posts += r.posts.Load()
	}
	if posts == 0 {
		return 0
	}
	return float64(e.delivered()) / float64(posts)
}

func (e *env) percentiles() (p50, p99, max time.Duration) {
	var all []time.Duration
	for _, r := range e.recvs {
		r.mu.Lock()
		all = append(all, r.latency...)
		r.mu.Unlock()
	}
	if len(all) == 0 {
		return 0, 0, 0
	}
	slices.Sort(all)
	at := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
	return at(0.50), at(0.99), all[len(all)-1]
}

// sample reads a process's CPU time and peak RSS from /proc.
func sample(pid int) result {
	var r result
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		r.cpu = time.Duration(utime+stime) * 10 * time.Millisecond // CLK_TCK 100
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				r.rssMB = kb / 1024
			}
		}
	}
	return r
}

func until(limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

func pemOf(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// consumer is one measured program, started against an env.
type consumer struct {
	name  string
	start func(*env) (*proc, error)
}

// consumers are the programs compared.
func consumers(b binaries, h2 bool) []consumer {
	all := []consumer{
		{"auditrelay", func(e *env) (*proc, error) { return e.startRelay(b.relay, "") }},
		{"bare loop", func(e *env) (*proc, error) { return e.startBare(b.bench, false, h2) }},
		{"bare loop, a durable per webhook", func(e *env) (*proc, error) { return e.startBare(b.bench, true, h2) }},
	}
	if relayOnly {
		return all[:1]
	}
	return append(all[1:], all[0])
}

// relayOnly (-relay-only) measures auditrelay alone: the bare loops have
// no retries of their own, and with entries of 1 MiB a pull batch of 500
// overruns the NATS client's pending limit and waits on redeliveries.
var relayOnly bool

// runs measures each consumer o.runs times, alternating, and returns the
// results by consumer.
func runs(ctx context.Context, cs []consumer, o options, measure func(context.Context, options, func(*env) (*proc, error)) (result, error)) (map[string][]result, error) {
	out := map[string][]result{}
	for i := range o.runs {
		for _, c := range cs {
			r, err := measure(ctx, o, c.start)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", c.name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "  %s run %d: %.0f entries/s, %.0f entries/CPU-s, %.1f MB, p99 %v, lost %d, dup %d, conns %d\n",
				c.name, i+1, r.entriesPerSec, r.perCPUSecond, r.rssMB, r.p99.Round(time.Microsecond), r.lost, r.dup, r.conns)
			out[c.name] = append(out[c.name], r)
		}
	}
	return out, nil
}

func pick(rs []result, f func(result) float64) float64 {
	xs := make([]float64, len(rs))
	for i, r := range rs {
		xs[i] = f(r)
	}
	return median(xs)
}

func throughputTable(ctx context.Context, b binaries, o options) error {
	fmt.Fprintf(os.Stderr, "throughput: %d entries × %d webhooks, %d runs (tls=%v, h2=%v)\n", o.entries, o.webhooks, o.runs, o.tls, o.h2)
	res, err := runs(ctx, consumers(b, o.h2), o, throughput)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "throughput (median of %d)\tentries/s\tdeliveries/s\tentries/CPU-s\tpeak RSS MB\tconnections\tlost\tdup\t\n", o.runs)
	base := res["bare loop"]
	if relayOnly {
		base = res["auditrelay"]
	}
	for _, c := range consumers(b, o.h2) {
		rs := res[c.name]
		fmt.Fprintf(w, "%s\t%.0f (%.2f×)\t%.0f\t%.0f (%.2f×)\t%.1f\t%.0f\t%.0f\t%.0f\t\n", c.name,
			pick(rs, func(r result) float64 { return r.entriesPerSec }),
			pick(rs, func(r result) float64 { return r.entriesPerSec })/pick(base, func(r result) float64 { return r.entriesPerSec }),
			pick(rs, func(r result) float64 { return r.deliveriesPerSec }),
			pick(rs, func(r result) float64 { return r.perCPUSecond }),
			pick(rs, func(r result) float64 { return r.perCPUSecond })/pick(base, func(r result) float64 { return r.perCPUSecond }),
			pick(rs, func(r result) float64 { return r.rssMB }),
			pick(rs, func(r result) float64 { return float64(r.conns) }),
			pick(rs, func(r result) float64 { return float64(r.lost) }),
			pick(rs, func(r result) float64 { return float64(r.dup) }))
	}
	return w.Flush()
}

func latencyTable(ctx context.Context, b binaries, o options) error {
	fmt.Fprintf(os.Stderr, "latency: %d entries/s × %d webhooks for %v, %d runs (tls=%v)\n", o.rate, o.webhooks, o.steady, o.runs, o.tls)
	res, err := runs(ctx, consumers(b, o.h2), o, latency)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "latency (median of %d)\tp50 ms\tp99 ms\tmax ms\tpeak RSS MB\tlost\tdup\t\n", o.runs)
	ms := func(f func(result) time.Duration) func(result) float64 {
		return func(r result) float64 { return float64(f(r)) / 1e6 }
	}
	for _, c := range consumers(b, o.h2) {
		rs := res[c.name]
		fmt.Fprintf(w, "%s\t%.2f\t%.2f\t%.2f\t%.1f\t%.0f\t%.0f\t\n", c.name,
			pick(rs, ms(func(r result) time.Duration { return r.p50 })),
			pick(rs, ms(func(r result) time.Duration { return r.p99 })),
			pick(rs, ms(func(r result) time.Duration { return r.max })),
			pick(rs, func(r result) float64 { return r.rssMB }),
			pick(rs, func(r result) float64 { return float64(r.lost) }),
			pick(rs, func(r result) float64 { return float64(r.dup) }))
	}
	return w.Flush()
}
