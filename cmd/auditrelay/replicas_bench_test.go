package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// BenchmarkReplicas measures deliveries per second with 1, 2 and 3
// auditrelay processes sharing one config, against an endpoint that takes
// benchLatency per request, each webhook with maxInFlight = 8: the
// endpoint's latency, not CPU, bounds a replica, as with a real SIEM.
// Shapes: one ordered webhook (served by its one pinned replica), four
// ordered webhooks (pins spread over replicas as the server assigns them),
// one orderBy = none webhook (every replica pulls). Run with
//
//	go test -run '^$' -bench Replicas -benchtime 1x -count 5 ./cmd/auditrelay
//
// and take medians; deliveries/s is the figure.
func BenchmarkReplicas(b *testing.B) {
	shapes := []struct {
		name     string
		webhooks []string // name=orderBy
	}{
		{"ordered", []string{"a=rootId"}},
		{"ordered4", []string{"a=rootId", "b=rootId", "c=rootId", "d=rootId"}},
		{"none", []string{"n=none"}},
	}
	for _, sh := range shapes {
		for n := 1; n <= 3; n++ {
			b.Run(fmt.Sprintf("%s/replicas=%d", sh.name, n), func(b *testing.B) {
				for range b.N {
					rate := benchRun(b, n, sh.webhooks)
					b.ReportMetric(rate, "deliveries/s")
				}
			})
		}
	}
}

const (
	benchEntries = 2000
	benchLatency = 10 * time.Millisecond
)

// benchRun starts a server, n sidecars and a counting endpoint, publishes
// benchEntries, and returns deliveries per second from the first publish
// to the last delivery.
func benchRun(b *testing.B, n int, webhooks []string) float64 {
	b.StopTimer()
	srv := natstest.Start(b)
	_, js := natstest.Connect(b, srv)
	var count atomic.Int64
	ep := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		time.Sleep(benchLatency)
		count.Add(1)
	}))
	defer ep.Close()
	for range n {
		startBenchSidecar(b, srv.ClientURL(), benchWebhooks(ep.URL, webhooks))
	}
	want := int64(benchEntries * len(webhooks))
	b.StartTimer()
	start := time.Now()
	publishAll(b, js, entries(benchEntries))
	for count.Load() < want {
		if time.Since(start) > 2*time.Minute {
			b.Fatalf("%d of %d deliveries in 2 minutes", count.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	return float64(want) / elapsed.Seconds()
}

func benchWebhooks(url string, webhooks []string) string {
	var sb strings.Builder
	sb.WriteString("webhooks {\n")
	for _, w := range webhooks {
		name, order, _ := strings.Cut(w, "=")
		fmt.Fprintf(&sb, "  %s { url = \"%s/%s\", delivery { orderBy = %s, maxInFlight = 8 } }\n", name, url, name, order)
	}
	return sb.String() + "}\n"
}

// startBenchSidecar is startSidecar for a benchmark: a real process on a
// single server, killed when the run ends, its log discarded.
func startBenchSidecar(b *testing.B, url, webhooks string) {
	b.Helper()
	admin := reservedAddr(b) // a benchmark, not run by CI: the log stays quiet
	file := filepath.Join(b.TempDir(), "application.conf")
	conf := fmt.Sprintf("auditrelay {\n  nats.url = %q\n  admin.listen = %q\n  log.level = warn\n}\n%s", url, admin, webhooks)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-config", file)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatal("sidecar not ready within 15s")
}

// reservedAddr is a loopback address nothing listens on for now.
func reservedAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
