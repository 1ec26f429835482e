package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests *prometheus.CounterVec
	duration prometheus.Histogram
}

// newMetrics registers the ingest's series on reg (none when nil), each
// result at 0 before the first request.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditrelay_ingest_requests_total",
			Help: "Requests to the ingest listener by result: stored, duplicate, invalid, unauthorized, too_large, unavailable.",
		}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "auditrelay_ingest_duration_seconds",
			Help:    "Time from the receipt of an ingest request to its answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	for _, r := range []string{resultStored, resultDuplicate, resultInvalid, resultUnauthorized, resultTooLarge, resultUnavailable} {
		m.requests.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
