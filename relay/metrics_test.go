package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/auditrelay/auditrelay/config"
)

// startWith runs a sidecar with the given options until the test ends; it
// does not wait for readiness.
func startWith(t *testing.T, cfg *config.Config, o Options) *started {
	t.Helper()
	r, err := New(cfg, o)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- r.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// fastPendingPoll shortens the pending-entries poll for one test.
func fastPendingPoll(t *testing.T) {
	old := consumerPoll
	consumerPoll = 100 * time.Millisecond
	t.Cleanup(func() { consumerPoll = old })
}

// scrape is one GET /metrics, parsed, with its raw text.
type scrape struct {
	fams map[string]*dto.MetricFamily
	raw  []byte
}

func scrapeMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, raw)
	}
	return scrape{fams: fams, raw: raw}
}

// value finds the series of name whose labels include want (label=value
// pairs); for a histogram it is the sample count. ok is false when absent.
func (s scrape) value(name string, want ...string) (float64, bool) {
	f := s.fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		if !hasLabels(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func hasLabels(m *dto.Metric, want []string) bool {
	got := map[string]string{}
	for _, l := range m.Label {
		got[l.GetName()] = l.GetValue()
	}
	for i := 0; i+1 < len(want); i += 2 {
		if got[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// metric reads one series, failing the test when it is absent.
func (s scrape) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	v, ok := s.value(name, labels...)
	if !ok {
		t.Fatalf("%s%v absent from /metrics", name, labels)
	}
	return v
}

// waitMetric scrapes until the series reads want.
func waitMetric(t *testing.T, addr string, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, ok := scrapeMetrics(t, addr).value(name, labels...)
		if ok && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 15s waiting for %s%v = %v; last %v (present %t)", name, labels, want, got, ok)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quietLog logs warnings and errors to stderr, as startRelay does.
func quietLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// webhookSeries are the series every webhook has from the start.
var webhookSeries = []struct {
	name   string
	labels []string
	want   float64
}{
	{"auditrelay_deliveries_total", []string{"outcome", "delivered"}, 0},
	{"auditrelay_deliveries_total", []string{"outcome", "retried"}, 0},
	{"auditrelay_deliveries_total", []string{"outcome", "deadlettered"}, 0},
	{"auditrelay_deliveries_total", []string{"outcome", "filtered"}, 0},
	{"auditrelay_delivery_attempts_total", []string{"code", "200"}, 0},
	{"auditrelay_request_duration_seconds", nil, 0},
	{"auditrelay_delivery_lag_seconds", nil, 0},
	{"auditrelay_pending_entries", nil, 0},
	{"auditrelay_webhook_up", nil, 1},
}

// TestMetricsEndToEnd scrapes /metrics through deliveries that succeed,
// retry and are dead-lettered, an entry filtered out, an invalid message
// and two reloads, and lints the exposition.
func TestMetricsEndToEnd(t *testing.T) {
	fastPendingPoll(t)
	srv, js := natsServer(t)
	var failing atomic.Bool
	failing.Store(true)
	ok := newReceiver(t, nil)
	flaky := newReceiver(t, func(_ *request, _ int) int {
		if failing.Load() {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	bad := newReceiver(t, func(*request, int) int { return http.StatusBadRequest })
	hooks := fmt.Sprintf(`webhooks {
  ok { url = "%s/ok" }
  flaky { url = "%s/flaky", delivery { %s } }
  bad { url = "%s/bad" }
  alerts { url = "%s/alerts", filter.objectTypes = [alert] }
}`, ok.URL, flaky.URL, endlessRetry, bad.URL, ok.URL)
	cfg := parseConfig(t, testConfig(srv, hooks))
	reg := prometheus.NewRegistry()
	r := startWith(t, cfg, Options{Version: "v9.9.9", Revision: "abc123", Logger: quietLog(), Registry: reg})
	waitFor(t, 10*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })
	addr := r.AdminAddr()

	before := scrapeMetrics(t, addr)
	for _, wh := range []string{"ok", "flaky", "bad", "alerts"} {
		for _, s := range webhookSeries {
			if got := before.metric(t, s.name, append([]string{"webhook", wh}, s.labels...)...); got != s.want {
				t.Errorf("before any entry: %s{webhook=%q %v} = %v, want %v", s.name, wh, s.labels, got, s.want)
			}
		}
	}
	for _, name := range []string{"auditrelay_entries_received_total", "auditrelay_entries_invalid_total"} {
		if got := before.metric(t, name); got != 0 {
			t.Errorf("before any entry: %s = %v", name, got)
		}
	}
	if got := before.metric(t, "auditrelay_build_info", "version", "v9.9.9", "revision", "abc123", "goversion", runtime.Version()); got != 1 {
		t.Errorf("auditrelay_build_info = %v, want 1", got)
	}

	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 1), entry("Update", "case", "a", "a", 2))
	publishRaw(t, srv.ClientURL(), "thehive.audit.case", "not json")

	waitMetric(t, addr, 3, "auditrelay_entries_received_total")
	waitMetric(t, addr, 1, "auditrelay_entries_invalid_total")
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "ok", "outcome", "delivered")
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "bad", "outcome", "deadlettered")
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "alerts", "outcome", "filtered")
	// flaky keeps failing: it is down, retrying, and both entries are pending.
	waitMetric(t, addr, 0, "auditrelay_webhook_up", "webhook", "flaky")
	waitMetric(t, addr, 2, "auditrelay_pending_entries", "webhook", "flaky")
	s := scrapeMetrics(t, addr)
	if got := s.metric(t, "auditrelay_deliveries_total", "webhook", "flaky", "outcome", "retried"); got < 1 {
		t.Errorf("flaky retried = %v, want >= 1 while it fails", got)
	}
	if got := s.metric(t, "auditrelay_delivery_attempts_total", "webhook", "flaky", "code", "503"); got < 1 {
		t.Errorf("flaky attempts{code=503} = %v, want >= 1", got)
	}
	checkSettled(t, s)

	failing.Store(false)
	waitMetric(t, addr, 2, "auditrelay_deliveries_total", "webhook", "flaky", "outcome", "delivered")
	waitMetric(t, addr, 1, "auditrelay_webhook_up", "webhook", "flaky")
	waitMetric(t, addr, 0, "auditrelay_pending_entries", "webhook", "flaky")
	if got := scrapeMetrics(t, addr).metric(t, "auditrelay_delivery_lag_seconds", "webhook", "flaky"); got != 2 {
		t.Errorf("flaky lag count = %v, want 2", got)

	}

	if err := r.Reload(cfg); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	r.ReloadFailed(fmt.Errorf("test: file does not load"))
	waitMetric(t, addr, 1, "auditrelay_config_reloads_total", "result", "success")
	waitMetric(t, addr, 1, "auditrelay_config_reloads_total", "result", "failure")

	lint(t, reg, scrapeMetrics(t, addr).raw)
}

// checkSettled checks the webhooks that are done: counts of attempts,
// durations and lags match what the receivers answered.
func checkSettled(t *testing.T, s scrape) {
	t.Helper()
	want := []struct {
		name   string
		labels []string
		want   float64
	}{
		{"auditrelay_delivery_attempts_total", []string{"webhook", "ok", "code", "200"}, 2},
		{"auditrelay_delivery_attempts_total", []string{"webhook", "bad", "code", "400"}, 2},
		{"auditrelay_request_duration_seconds", []string{"webhook", "ok"}, 2},
		{"auditrelay_request_duration_seconds", []string{"webhook", "bad"}, 2},
		{"auditrelay_delivery_lag_seconds", []string{"webhook", "ok"}, 2},
		{"auditrelay_delivery_lag_seconds", []string{"webhook", "bad"}, 0}, // never a 2xx
		{"auditrelay_deliveries_total", []string{"webhook", "bad", "outcome", "delivered"}, 0},
		{"auditrelay_deliveries_total", []string{"webhook", "alerts", "outcome", "delivered"}, 0},
		{"auditrelay_webhook_up", []string{"webhook", "ok"}, 1},
		{"auditrelay_webhook_up", []string{"webhook", "bad"}, 1}, // a 400 is an answer, not an outage
		{"auditrelay_pending_entries", []string{"webhook", "ok"}, 0},
	}
	for _, w := range want {
		if got := s.metric(t, w.name, w.labels...); got != w.want {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.want)
		}
	}
}

// lint runs promlint over the registry and over the scraped text.
func lint(t *testing.T, reg *prometheus.Registry, raw []byte) {
	t.Helper()
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("GatherAndLint: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	problems, err = promlint.New(bytes.NewReader(raw)).Lint()
	if err != nil {
		t.Fatalf("lint /metrics: %v", err)
	}
	for _, p := range problems {
		t.Errorf("lint /metrics: %s: %s", p.Metric, p.Text)
	}
	if !strings.Contains(string(raw), "# HELP auditrelay_deliveries_total") {
		t.Error("/metrics has no HELP for auditrelay_deliveries_total")
	}
}

// publishRaw publishes bytes that need not be an entry.
func publishRaw(t *testing.T, url, subject, data string) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	if _, err := nc.Request(subject, []byte(data), 5*time.Second); err != nil {
		t.Fatalf("publish %q: %v", data, err)
	}
}
