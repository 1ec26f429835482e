package sink

import (
	"context"
	"errors"
	"time"
)

// deadline bounds the attempts of one delivery goroutine by
// timeout.request, one attempt at a time, with one context and one timer
// kept from each attempt to the next. A context.WithTimeout per attempt
// made a context, its done channel and a timer, and entered and left its
// parent's children, on every request. A context whose time ran out, or
// whose parent ended, stays cancelled: it is dropped, and the next attempt
// makes another.
type deadline struct {
	parent context.Context
	limit  time.Duration
	// ctx is cancelled by timer with the cause context.DeadlineExceeded.
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
}

// start begins an attempt, whose context ends limit from now or with
// parent, whichever comes first. Every start is followed by a stop before
// the next.
func (d *deadline) start() context.Context {
	if d.ctx == nil {
		ctx, cancel := context.WithCancelCause(d.parent)
		d.ctx, d.cancel = ctx, cancel
		d.timer = time.AfterFunc(d.limit, func() { cancel(context.DeadlineExceeded) })
	} else {
		d.timer.Reset(d.limit)
	}
	return &attemptContext{Context: d.ctx, end: time.Now().Add(d.limit)}
}

// stop ends the attempt. The context is kept for the next one only when
// the timer was stopped before it fired and the parent has not ended.
func (d *deadline) stop() {
	if d.timer.Stop() && d.ctx.Err() == nil {
		return
	}
	d.close()
}

// close releases the context and its timer.
func (d *deadline) close() {
	if d.ctx == nil {
		return
	}
	d.timer.Stop()
	d.cancel(context.Canceled)
	d.ctx, d.cancel, d.timer = nil, nil, nil
}

// attemptContext is one attempt's view of its deadline's context, as a
// context.WithTimeout would show it: Deadline is the attempt's own end,
// and Err is context.DeadlineExceeded once its time ran out. (net/http
// reads context.Cause, which is that too, and so does errorKind.)
type attemptContext struct {
	context.Context
	end time.Time
}

func (c *attemptContext) Deadline() (time.Time, bool) {
	if p, ok := c.Context.Deadline(); ok && p.Before(c.end) {
		return p, true
	}
	return c.end, true
}

func (c *attemptContext) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}
