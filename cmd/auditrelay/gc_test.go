package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// gcPercentFor's GOGC starts the next collection where Go puts it, at
// live × (1 + GOGC/100) and never under 4 MiB × GOGC/100 (the runtime's
// heap minimum): at 16 MiB, or at twice live once that is more.
func TestGCPercentForStartsAtTheFloor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 400},        // before the first collection
		{64 << 10, 400}, // the heap minimum at 400: 16 MiB
		{1 * mib, 400},
		{3*mib + 1, 400}, // about what is live at a steady 1,000 entries/s
		{4 * mib, 300},   // 4 × 4
		{5 * mib, 220},   // 5 × 3.2
		{6 * mib, 167},   // rounded up: the floor is never short
		{8*mib - 1, 101}, // the last under Go's default
		{8 * mib, 100},   // twice 8: Go's own doubling from here
		{12 * mib, 100},  // a drain: Go's default, its peak unchanged
		{200 * mib, 100}, // never under Go's default
		{1 << 40, 100},
	} {
		got := gcPercentFor(tc.live)
		if got != tc.want {
			t.Errorf("gcPercentFor(%d) = %d, want %d", tc.live, got, tc.want)
		}
		next := max(tc.live*uint64(100+got)/100, 4*mib*uint64(got)/100)
		want := max(gcFloor, 2*tc.live)
		if next < want || next > want+want/100 {
			t.Errorf("live %d: the next collection at %d, want %d", tc.live, next, want)
		}
	}
}

var gogcScraped = regexp.MustCompile(`(?m)^go_gc_gogc_percent (\S+)$`)

// The sidecar sets its garbage collector's floor unless GOGC or
// GOMEMLIMIT is set, and its GOGC shows in /metrics (go_gc_gogc_percent).
// Idle, little is live: the floor puts GOGC above Go's 100.
func TestRunSetsGCFloorUnlessTold(t *testing.T) {
	srv := natstest.Start(t)
	file := writeConfig(t, srv, anyPort, `webhooks { hook { url = "http://127.0.0.1:1/hook" } }`)
	without := environWithout("GOGC", "GOMEMLIMIT")
	for _, tc := range []struct {
		name string
		env  []string
		ok   func(p float64) bool
		want string
	}{
		{"unset", without, func(p float64) bool { return p > 100 && p <= 400 }, "over 100, at most 400"},
		{"GOGC=150", append(without, "GOGC=150"), func(p float64) bool { return p == 150 }, "150, as set"},
		{"GOMEMLIMIT", append(without, "GOMEMLIMIT=1GiB"), func(p float64) bool { return p == 100 }, "Go's 100, untouched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSidecarEnv(t, file, tc.env)
			if p := scrapeGOGC(t, s.admin); !tc.ok(p) {
				t.Fatalf("go_gc_gogc_percent %v, want %s", p, tc.want)
			}
		})
	}
}

// With much live (1 MB entries held for 6 webhooks whose endpoint is
// down, up to 4 MiB each), the floor is out of the way: GOGC comes down
// from 400 to Go's 100, so a large heap is not let grow five times.
func TestGCFloorGivesWayToALargeLiveHeap(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	var hooks []string
	for i := range 6 {
		hooks = append(hooks, fmt.Sprintf(`h%d { url = "http://127.0.0.1:1/h%d", delivery.retry { maxAttempts = 1000, maxAge = 1h } }`, i, i))
	}
	file := writeConfig(t, srv, anyPort, "webhooks { "+strings.Join(hooks, "\n")+" }")
	s := startSidecarEnv(t, file, environWithout("GOGC", "GOMEMLIMIT"))
	if p := scrapeGOGC(t, s.admin); p <= 100 {
		t.Fatalf("go_gc_gogc_percent %v idle, want over 100: the test would prove nothing", p)
	}
	pad := strings.Repeat("x", 1_000_000) // under NATS' 1 MiB payload limit
	var big []string
	for i := range 40 {
		big = append(big, fmt.Sprintf(`{"operation":"Creation","objectType":"case","objectId":"c%d","rootId":"c%d","startDate":1700000000000,"details":{"description":"%s"}}`, i, i, pad))
	}
	publishAll(t, js, big)
	var p float64
	waitUntil(t, 30*time.Second, "go_gc_gogc_percent 100", func() bool {
		p = scrapeGOGC(t, s.admin)
		return p == 100
	})
	t.Logf("go_gc_gogc_percent %v", p)
}

func scrapeGOGC(t *testing.T, admin string) float64 {
	t.Helper()
	m := gogcScraped.FindStringSubmatch(scrape(t, admin))
	if m == nil {
		t.Fatal("no go_gc_gogc_percent in /metrics")
	}
	p, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
