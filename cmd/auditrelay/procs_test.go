package main

import (
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

func TestProcsForIsHalfAtLeastOne(t *testing.T) {
	for available, want := range map[int]int{1: 1, 2: 1, 3: 1, 4: 2, 7: 3, 64: 32} {
		if got := procsFor(available); got != want {
			t.Errorf("procsFor(%d) = %d, want %d", available, got, want)
		}
	}
}

var procsLogged = regexp.MustCompile(`auditrelay starting.* procs=(\d+)`)

// The sidecar runs on half the CPUs it may use unless GOMAXPROCS is set,
// and says so in its start line.
func TestRunSaysItsProcs(t *testing.T) {
	srv := natstest.Start(t)
	file := writeConfig(t, srv, anyPort, `webhooks { hook { url = "http://127.0.0.1:1/hook" } }`)
	withoutProcs := environWithout("GOMAXPROCS")
	for _, tc := range []struct {
		name string
		env  []string
		ok   func(n int) bool
		want string
	}{
		{"unset", withoutProcs, func(n int) bool { return n >= 1 && n <= max(1, runtime.NumCPU()/2) }, "between 1 and half the CPUs"},
		{"GOMAXPROCS=3", append(withoutProcs, "GOMAXPROCS=3"), func(n int) bool { return n == 3 }, "3, as set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSidecarEnv(t, file, tc.env)
			m := procsLogged.FindStringSubmatch(s.start)
			if m == nil {
				t.Fatalf("start line %q has no procs", s.start)
			}
			if n, _ := strconv.Atoi(m[1]); !tc.ok(n) {
				t.Fatalf("procs=%d, want %s", n, tc.want)
			}
		})
	}
}
