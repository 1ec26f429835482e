package relay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// BenchmarkPipeline drains a backlog of b.N TheHive-shaped entries (~1.5
// KB) to 4 plain-HTTP webhooks through the whole sidecar in one process,
// for profiling (-cpuprofile, -memprofile). The figures that compare with
// the bare loop come from ./bench, with the sidecar in its own process.
func BenchmarkPipeline(b *testing.B) {
	srv := natstest.Start(b)
	_, js := natstest.Connect(b, srv)
	var got atomic.Int64
	hook := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	b.Cleanup(hook.Close)
	var hooks strings.Builder
	for i := range 4 {
		fmt.Fprintf(&hooks, "w%d { url = %q, delivery.start = all }\n", i, fmt.Sprintf("%s/w%d", hook.URL, i))
	}
	cfg := parseConfigB(b, testConfig(srv, "webhooks {\n"+hooks.String()+"}"))
	publishBacklog(b, js, b.N)
	r, err := New(cfg, Options{Version: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registry: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- r.Run(ctx) }()
	for got.Load() < int64(4*b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entries/s")
}

func parseConfigB(b *testing.B, hocon string) *config.Config {
	b.Helper()
	cfg, err := config.Parse([]byte(hocon), "")
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

func publishBacklog(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "THEHIVE_AUDIT", Subjects: []string{"thehive.audit.>"}}); err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("Lateral movement indicators seen on the domain controller. ", 20)
	var futures []jetstream.PubAckFuture
	for i := range n {
		e := fmt.Sprintf(`{"operation":"Update","objectType":"case_task","objectId":"t%d","rootId":"r%d","base":true,"details":{"title":"x","description":%q}}`, i, i%500, pad)
		f, err := js.PublishAsync("thehive.audit.case_task", []byte(e))
		if err != nil {
			b.Fatal(err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
	}
}
