package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/sink"
)

// metrics are the sidecar-wide metrics; the per-webhook ones are sink's.
type metrics struct {
	sink        *sink.Metrics
	received    prometheus.Counter
	invalid     prometheus.Counter
	reloads     *prometheus.CounterVec
	active      *prometheus.GaugeVec
	intakeBound atomic.Bool
}

func newMetrics(reg *prometheus.Registry, o Options) *metrics {
	m := &metrics{
		sink: sink.NewMetrics(reg),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditrelay_entries_received_total", Help: "Entries read from the audit stream (once, whatever the webhooks).",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "auditrelay_entries_invalid_total", Help: "Messages that are not audit entries, dead-lettered to <deadLetter.subject>._invalid.",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auditrelay_config_reloads_total", Help: "Configuration reloads (SIGHUP) by result.",
		}, []string{"result"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "auditrelay_webhook_active",
			Help: "1 when this replica delivers to the webhook (the pinned one of an ordered webhook, or any replica of an orderBy = none one), 0 on standby.",
		}, []string{"webhook"}),
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "auditrelay_build_info", Help: "auditrelay's version, revision and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(o.Version, o.Revision, goVersion()).Set(1)
	m.reloads.WithLabelValues("success")
	m.reloads.WithLabelValues("failure")
	reg.MustRegister(m.received, m.invalid, m.reloads, m.active, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Received counts an entry read by the intake.
func (m *metrics) Received() { m.received.Inc() }

// Invalid counts a message that is not an audit entry.
func (m *metrics) Invalid() { m.invalid.Inc() }

// setActive sets auditrelay_webhook_active for this replica's role.
func (m *metrics) setActive(name string, role audit.Role) {
	v := 1.0
	if role == audit.RoleStandby {
		v = 0
	}
	m.active.WithLabelValues(name).Set(v)
}

// forgetActive removes a stopped webhook's series.
func (m *metrics) forgetActive(name string) { m.active.DeleteLabelValues(name) }

// adminHeaderTimeout bounds how long a client may take to send a request's
// headers: a connection that never finishes them is closed, not kept.
const adminHeaderTimeout = 10 * time.Second

func (r *Relay) listen(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("auditrelay.admin.listen: %w", err)
	}
	r.admin = l
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", r.readyz)
	mux.HandleFunc("GET /webhooks/{name}/events/{id}", r.fetchEvent)
	r.adminSrv = &http.Server{Handler: mux, ReadHeaderTimeout: adminHeaderTimeout, IdleTimeout: time.Minute}
	return nil
}

// AdminAddr is the admin listener's address (useful with port 0).
func (r *Relay) AdminAddr() string { return r.admin.Addr().String() }

func (r *Relay) serveAdmin() {
	if err := r.adminSrv.Serve(r.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
		r.log.Error("admin listener stopped", "err", err)
	}
}

// NotReady lists why the sidecar is not ready; empty means ready.
func (r *Relay) NotReady() []string {
	var why []string
	src := r.source()
	if src == nil || !src.Connected() {
		why = append(why, "NATS not connected")
	}
	if r.ingest != nil && !r.ingest.Ready() {
		why = append(why, "ingest listener not serving")
	}
	if e := r.streamErr.Load(); e != nil {
		why = append(why, "streams: "+*e)
	}
	if !r.metrics.intakeBound.Load() {
		why = append(why, "intake consumer not bound")
	} else if err := r.intake.Load().Fault(); err != nil {
		why = append(why, fmt.Sprintf("intake consumer: cannot pull: %v", err))
	}
	for _, rw := range r.runningWebhooks() {
		switch f := rw.boundFeed(); {
		case f == nil:
			why = append(why, fmt.Sprintf("webhook %q: consumer not bound", rw.wh.Name()))
		case f.Fault() != nil:
			why = append(why, fmt.Sprintf("webhook %q: cannot pull: %v", rw.wh.Name(), f.Fault()))
		}
	}
	sort.Strings(why)
	return why
}

func (r *Relay) readyz(w http.ResponseWriter, _ *http.Request) {
	if why := r.NotReady(); len(why) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": why})
		return
	}
	// Standby is healthy: the role is said, never a reason for 503.
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "webhooks": r.roles(), "intake": r.intakeRole.get()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
