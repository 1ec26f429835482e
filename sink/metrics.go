package sink

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes as counted in auditrelay_deliveries_total.
const (
	OutcomeDelivered    = "delivered"
	OutcomeRetried      = "retried"
	OutcomeDeadLettered = "deadlettered"
	OutcomeFiltered     = "filtered"
)

// Metrics are the per-webhook delivery metrics (SPEC §5), registered once
// and shared by every webhook.
type Metrics struct {
	deliveries *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	lag        *prometheus.HistogramVec
	pending    *prometheus.GaugeVec
	up         *prometheus.GaugeVec
}

// NewMetrics registers the delivery metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditrelay_deliveries_total",
			Help: "Entries handled per webhook, by outcome: delivered, retried (one per failed attempt that is retried), deadlettered, filtered.",
		}, []string{"webhook", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditrelay_delivery_attempts_total",
			Help: "HTTP attempts per webhook, by HTTP status or failure kind (tls, proxy, connect, timeout).",
		}, []string{"webhook", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditrelay_request_duration_seconds",
			Help:    "Duration of each HTTP attempt per webhook.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"webhook"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "auditrelay_delivery_lag_seconds",
			Help:    "Time from the entry's publish (JetStream timestamp) to its 2xx, per webhook.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
		}, []string{"webhook"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditrelay_pending_entries",
			Help: "Entries of the stream the webhook's consumer has yet to finish (not delivered or not acknowledged).",
		}, []string{"webhook"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditrelay_webhook_up",
			Help: "1 when the webhook's last attempt got an answer that is not a retriable failure, else 0.",
		}, []string{"webhook"}),
	}
	reg.MustRegister(m.deliveries, m.attempts, m.duration, m.lag, m.pending, m.up)
	return m
}

// webhookMetrics are one webhook's series, resolved once so the hot path
// does no label lookups.
type webhookMetrics struct {
	delivered, deadLettered, filtered *tallied
	retried                           prometheus.Counter
	duration, lag                     prometheus.Observer
	pending, up                       prometheus.Gauge
	attempts                          *prometheus.CounterVec
	codes                             map[string]prometheus.Counter
}

// forWebhook creates a webhook's series at 0 (SPEC §5: they exist from start).
func (m *Metrics) forWebhook(name string) *webhookMetrics {
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	w := &webhookMetrics{
		delivered:    &tallied{Counter: m.deliveries.WithLabelValues(name, OutcomeDelivered)},
		retried:      m.deliveries.WithLabelValues(name, OutcomeRetried),
		deadLettered: &tallied{Counter: m.deliveries.WithLabelValues(name, OutcomeDeadLettered)},
		filtered:     &tallied{Counter: m.deliveries.WithLabelValues(name, OutcomeFiltered)},
		duration:     m.duration.WithLabelValues(name),
		lag:          m.lag.WithLabelValues(name),
		pending:      m.pending.WithLabelValues(name),
		up:           m.up.WithLabelValues(name),
		attempts:     m.attempts.MustCurryWith(prometheus.Labels{"webhook": name}),
		codes:        map[string]prometheus.Counter{},
	}
	for _, code := range []string{"200"} {
		w.codes[code] = w.attempts.WithLabelValues(code)
	}
	w.up.Set(1)
	return w
}

// attempt counts one attempt by code; called from several goroutines, so
// the cache is only read after it is filled at start for common codes.
func (w *webhookMetrics) attempt(code string) {
	if c, ok := w.codes[code]; ok {
		c.Inc()
		return
	}
	w.attempts.WithLabelValues(code).Inc()
}

// Forget removes a webhook's series (a webhook removed by a reload).
func (m *Metrics) Forget(name string) {
	for _, o := range []string{OutcomeDelivered, OutcomeRetried, OutcomeDeadLettered, OutcomeFiltered} {
		m.deliveries.DeleteLabelValues(name, o)
	}
	m.attempts.DeletePartialMatch(prometheus.Labels{"webhook": name})
	m.duration.DeleteLabelValues(name)
	m.lag.DeleteLabelValues(name)
	m.pending.DeleteLabelValues(name)
	m.up.DeleteLabelValues(name)
}

// tallied is a counter that also keeps its count for the webhook itself:
// replay and redrive report what they did from it (Webhook.Outcomes).
type tallied struct {
	prometheus.Counter
	n atomic.Int64
}

func (t *tallied) Inc() { t.Counter.Inc(); t.n.Add(1) }

func (t *tallied) Add(v float64) { t.Counter.Add(v); t.n.Add(int64(v)) }

// Outcomes are the entries a webhook has finished since it was built.
type Outcomes struct {
	Delivered, DeadLettered, Filtered int
}

// Outcomes tells what the webhook has finished so far.
func (w *Webhook) Outcomes() Outcomes {
	return Outcomes{Delivered: int(w.m.delivered.n.Load()), DeadLettered: int(w.m.deadLettered.n.Load()),
		Filtered: int(w.m.filtered.n.Load())}
}
