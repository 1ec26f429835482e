package relay

import (
	"errors"
	"reflect"
	"runtime"

	"github.com/auditrelay/auditrelay/config"
)

// Reload applies a new configuration (SIGHUP): added, removed and changed
// webhooks take effect without touching the others. A configuration that
// cannot be built (a store that does not read, a bad proxy) is rejected
// whole and the running one kept. auditrelay's own section needs a restart.
func (r *Relay) Reload(cfg *config.Config) error {
	err := r.reload(cfg)
	result := "success"
	if err != nil {
		result = "failure"
		r.log.Error("reload rejected; the running configuration is kept", "err", err)
	}
	r.metrics.reloads.WithLabelValues(result).Inc()
	return err
}

// ReloadFailed records a reload whose file did not load.
func (r *Relay) ReloadFailed(err error) {
	r.log.Error("reload rejected; the running configuration is kept", "err", err)
	r.metrics.reloads.WithLabelValues("failure").Inc()
}

// reload swaps webhooks in three steps, holding mu only to change the set:
// the stopped webhooks drain (up to shutdownTimeout) without blocking
// /readyz, the fetch API or dead letters. SIGHUPs are handled one at a time.
func (r *Relay) reload(cfg *config.Config) error {
	r.mu.Lock()
	if !reflect.DeepEqual(cfg.Auditrelay, r.config().Auditrelay) {
		r.log.Warn("changes to the auditrelay section take effect at the next restart")
	}
	added, err := r.buildChanged(cfg)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	stopping := map[string]*running{}
	for name, rw := range r.webhooks {
		if wh := cfg.Webhook(name); wh == nil || !delivered(wh) || added[name] != nil {
			stopping[name] = rw
			delete(r.webhooks, name)
		}
	}
	r.mu.Unlock()
	for name, rw := range stopping {
		r.stopWebhook(name, rw, added[name] == nil)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, rw := range added {
		r.webhooks[name] = rw
		if r.ctx == nil {
			continue // not started yet: startAll starts it
		}
		r.start(r.ctx, rw)
		r.log.Info("webhook started by reload", "webhook", name)
	}
	r.cfg.Store(cfg)
	for _, w := range cfg.Warnings {
		r.log.Warn(w)
	}
	return nil
}

// buildChanged builds the enabled webhooks that are new or whose config
// changed; it fails, building none, if any fails.
func (r *Relay) buildChanged(cfg *config.Config) (map[string]*running, error) {
	added := map[string]*running{}
	var errs []error
	for _, wh := range cfg.Webhooks {
		if !delivered(&wh) {
			continue
		}
		if rw, ok := r.webhooks[wh.Name]; ok && reflect.DeepEqual(rw.wh.Config(), wh) {
			continue
		}
		w, err := r.build(cfg, wh)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		added[wh.Name] = &running{wh: w}
	}
	if err := errors.Join(errs...); err != nil {
		for _, rw := range added {
			rw.wh.Close()
		}
		return nil, err
	}
	return added, nil
}

// stopWebhook stops one webhook and waits for its shutdown; a removed one's
// series go too. Called without mu: the wait may be long.
func (r *Relay) stopWebhook(name string, rw *running, removed bool) {
	if rw.cancel != nil {
		rw.cancel()
		<-rw.done
	}
	rw.wh.Close()
	if removed {
		r.metrics.sink.Forget(name)
	}
	r.log.Info("webhook stopped by reload", "webhook", name)
}

func goVersion() string { return runtime.Version() }
