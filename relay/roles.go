package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/auditrelay/auditrelay/audit"
)

// rolePoll is how often each replica asks the server which replica is
// pinned per consumer; a variable so tests need not wait.
var rolePoll = 2 * time.Second

// pollRoles keeps each webhook's role (and auditrelay_webhook_active) and
// the intake's role current: a takeover shows within rolePoll.
func (r *Relay) pollRoles(ctx context.Context) {
	t := time.NewTicker(rolePoll)
	defer t.Stop()
	for {
		for _, rw := range r.runningWebhooks() {
			if f := rw.boundFeed(); f != nil {
				r.refreshRole(ctx, rw.wh.Name(), f, &rw.role)
			}
		}
		if in := r.intake.Load(); in != nil {
			r.refreshRole(ctx, "", in, &r.intakeRole)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// roleAsker is a webhook's feed or the intake.
type roleAsker interface {
	Role(ctx context.Context) (audit.Role, error)
}

// refreshRole stores the consumer's role, and for a webhook (name not
// empty) sets its gauge. An unanswered question keeps the last role.
func (r *Relay) refreshRole(ctx context.Context, name string, a roleAsker, into *roleValue) {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	role, err := a.Role(actx)
	if err != nil {
		return
	}
	into.set(role)
	if name != "" {
		r.metrics.setActive(name, role)
	}
}

// roleValue is a role read by /readyz while the poll writes it.
type roleValue struct{ v atomic.Value }

func (v *roleValue) set(role audit.Role) { v.v.Store(role) }

// get is the last role known; standby until the first answer.
func (v *roleValue) get() audit.Role {
	if role, ok := v.v.Load().(audit.Role); ok {
		return role
	}
	return audit.RoleStandby
}

// roles lists each bound webhook's role, for /readyz.
func (r *Relay) roles() map[string]audit.Role {
	out := map[string]audit.Role{}
	for _, rw := range r.runningWebhooks() {
		if rw.boundFeed() != nil {
			out[rw.wh.Name()] = rw.role.get()
		}
	}
	return out
}
