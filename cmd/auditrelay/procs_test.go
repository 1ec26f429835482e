package main

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	withoutProcs := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") })
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
			cmd := exec.Command(binary, "run", "-config", file)
			cmd.Env = tc.env
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			found := make(chan string, 1)
			go func() {
				sc := bufio.NewScanner(stderr)
				for sc.Scan() {
					t.Logf("sidecar: %s", sc.Text())
					if m := procsLogged.FindStringSubmatch(sc.Text()); m != nil {
						found <- m[1]
						break
					}
				}
				for sc.Scan() { // keep the pipe drained
				}
			}()
			select {
			case got := <-found:
				n, _ := strconv.Atoi(got)
				if !tc.ok(n) {
					t.Fatalf("procs=%d, want %s", n, tc.want)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("no start line with procs within 15s")
			}
		})
	}
}
