package relay

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/auditrelay/auditrelay/audit"
)

// consumerPoll is how often each consumer's info is read, for both
// auditrelay_pending_entries and this replica's role (a takeover shows
// within it); a variable so tests need not wait.
var consumerPoll = 2 * time.Second

// pollConsumers reads each bound webhook consumer's info once per
// consumerPoll — its backlog and whether this replica is active — and the
// intake's role.
func (r *Relay) pollConsumers(ctx context.Context) {
	t := time.NewTicker(consumerPoll)
	defer t.Stop()
	for {
		for _, rw := range r.runningWebhooks() {
			if f := rw.boundFeed(); f != nil {
				r.refreshWebhook(ctx, rw, f)
			}
		}
		if in := r.intake.Load(); in != nil {
			r.refreshIntake(ctx, in)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// refreshWebhook sets a webhook's pending gauge, role and active gauge from
// one look at its consumer; an unanswered question keeps the last values.
func (r *Relay) refreshWebhook(ctx context.Context, rw *running, f *audit.Feed) {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := f.Status(actx)
	if err != nil {
		return
	}
	rw.wh.SetPending(st.Pending)
	rw.role.set(st.Role)
	r.metrics.setActive(rw.wh.Name(), st.Role)
}

func (r *Relay) refreshIntake(ctx context.Context, in *audit.Intake) {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if role, err := in.Role(actx); err == nil {
		r.intakeRole.set(role)
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
