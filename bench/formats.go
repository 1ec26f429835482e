package main

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
)

// The formats table measures Splunk HEC events, up to 50 to a request,
// against format = audit: with batch.maxWait at its default, 0s, a request
// takes the entries ready, up to 50, without waiting for more; with the
// 1s of the Splunk recipe, a batch waits to fill.
const (
	splunkBatch     = "format = splunk, batch.maxEntries = 50"
	splunkBatchWait = "format = splunk, batch { maxEntries = 50, maxWait = 1s }"
)

// formatsTable drains the same backlog with auditrelay, its webhooks in
// format = audit and then in HEC batches of 50, alternating run by run,
// and compares them. The receivers count every entry of a body, so a
// batch counts as the entries it carries.
func formatsTable(ctx context.Context, b binaries, o options) error {
	cs := []consumer{
		{"format = audit", func(e *env) (*proc, error) { return e.startRelay(b.relay, ", format = audit") }},
		{splunkBatch, func(e *env) (*proc, error) { return e.startRelay(b.relay, ", "+splunkBatch) }},
		{splunkBatchWait, func(e *env) (*proc, error) { return e.startRelay(b.relay, ", "+splunkBatchWait) }},
	}
	fmt.Fprintf(os.Stderr, "formats: %d entries × %d webhooks, %d runs (tls=%v, h2=%v)\n", o.entries, o.webhooks, o.runs, o.tls, o.h2)
	res, err := runs(ctx, cs, o, throughput)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "auditrelay (median of %d)\tentries/s\tentries/CPU-s\tpeak RSS MB\tentries/request\tlost\tdup\t\n", o.runs)
	base := res[cs[0].name]
	for _, c := range cs {
		rs := res[c.name]
		eps := func(r result) float64 { return r.entriesPerSec }
		cpu := func(r result) float64 { return r.perCPUSecond }
		fmt.Fprintf(w, "%s\t%.0f (%.2f×)\t%.0f (%.2f×)\t%.1f\t%.1f\t%.0f\t%.0f\t\n", c.name,
			pick(rs, eps), pick(rs, eps)/pick(base, eps),
			pick(rs, cpu), pick(rs, cpu)/pick(base, cpu),
			pick(rs, func(r result) float64 { return r.rssMB }),
			pick(rs, func(r result) float64 { return r.perPost }),
			pick(rs, func(r result) float64 { return float64(r.lost) }),
			pick(rs, func(r result) float64 { return float64(r.dup) }))
	}
	return w.Flush()
}
