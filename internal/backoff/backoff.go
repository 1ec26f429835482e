// Package backoff is the one way auditrelay waits before trying again
// something that should work later: NATS coming back, a consumer bound or
// created again, a dead letter stored.
package backoff

import "time"

// Backoff doubles a wait from its first value up to its ceiling.
type Backoff struct {
	next, max time.Duration
}

// New starts at first and never exceeds max.
func New(first, max time.Duration) *Backoff { return &Backoff{next: first, max: max} }

// Next is the wait before the next try; each call doubles the one after.
func (b *Backoff) Next() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	return d
}

// Sleep waits d, or returns false when done is closed first, so that a
// wait never holds up a shutdown.
func Sleep(done <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return false
	case <-t.C:
		return true
	}
}

// Retry calls try until it succeeds, waiting between tries as b says;
// failed tells the caller of each failure and the wait before the next
// try. It returns false when done closes first.
func Retry(done <-chan struct{}, b *Backoff, try func() error, failed func(err error, wait time.Duration)) bool {
	for {
		err := try()
		if err == nil {
			return true
		}
		select {
		case <-done:
			return false
		default:
		}
		wait := b.Next()
		failed(err, wait)
		if !Sleep(done, wait) {
			return false
		}
	}
}
