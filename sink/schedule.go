package sink

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/auditrelay/auditrelay/audit"
)

// heartbeat is how often every held entry is reported InProgress, well
// inside audit.AckWait, so JetStream never redelivers an entry that is
// still queued or retrying.
const heartbeat = audit.AckWait / 4

// laterDelay is how long an entry handed back for later (its key holds its
// share already, or an earlier entry of its key was handed back) waits in
// JetStream before it comes again.
const laterDelay = 2 * time.Second

// laterForget is how long a handed-back entry is waited for: past it, the
// entry went elsewhere (another replica of a plain consumer) and no longer
// holds back its key.
const laterForget = laterDelay + audit.AckWait

// MaxHeldBytes bounds the entries a webhook holds by their size, beside
// their number (MaxAckPending): once they reach it, it takes no more until
// some are done, so large entries cannot pile up in memory. One entry is
// always taken, however large.
const MaxHeldBytes = 4 << 20

// held is an entry between its arrival and its acknowledgement.
type held struct {
	msg     *audit.Message
	key     string
	since   time.Time // when it became ready (head of its key)
	touched time.Time // when its ack deadline last started: receipt or InProgress
	sent    bool      // in a unit being delivered
}

// unit is one request's worth of entries: one, or a batch.
type unit struct {
	items []*held
	// msgs are the items' messages, taken by the scheduler when it made
	// the unit: the delivery goroutine reads these, never the held entries,
	// whose handle the scheduler renews when JetStream redelivers one.
	msgs []*audit.Message
	// handedBack is set when the unit was neither delivered nor
	// dead-lettered (shutdown): its entries were handed back to JetStream.
	handedBack bool
	// soft is the scheduler's soft context when the unit was handed out.
	soft context.Context
}

// scheduler owns a webhook's ordering state; only Run's goroutine touches it.
// Entries with the same key queue behind each other: only the head of a
// key's queue is ready, and it leaves the queue when its unit is done, so no
// attempt of an entry is made before every earlier entry with its key was
// delivered or dead-lettered. Entries of different keys (or with no key)
// go out in parallel up to maxInFlight.
type scheduler struct {
	w        *Webhook
	queues   map[string][]*held
	ready    []*held
	bySeq    map[uint64]*held
	bytes    int // raw bytes of the entries in bySeq
	inflight int
	done     chan *unit
	// work feeds the webhook's maxInFlight delivery goroutines: a fixed
	// pool, whose stacks stay grown, rather than one goroutine per unit.
	work  chan *unit
	timer *time.Timer // batch maxWait
	// soft is what deliveries retry under: it ends with Run's context, or
	// when the pin is lost (then a new one is made for what comes next).
	soft       context.Context
	cancelSoft context.CancelFunc
	// perKey is how many entries one key may hold; 0: no limit (a feed
	// whose entries cannot be handed back).
	perKey int
	// later are the entries handed back for later, per key, with when: a
	// later entry of the key is handed back too until they come again, so
	// that the key keeps its order.
	later map[string]map[uint64]time.Time
}

func newScheduler(w *Webhook) *scheduler {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &scheduler{
		w: w, queues: map[string][]*held{}, bySeq: map[uint64]*held{},
		done: make(chan *unit, w.cfg.Delivery.MaxInFlight), timer: t,
		later: map[string]map[uint64]time.Time{},
		work:  make(chan *unit, w.cfg.Delivery.MaxInFlight),
	}
}

// workers starts the delivery goroutines; they end when work is closed,
// which Run does once nothing is in flight.
func (s *scheduler) workers(hard context.Context) {
	for range s.w.cfg.Delivery.MaxInFlight {
		go func() {
			d := s.w.deadline(hard)
			defer d.close()
			for u := range s.work {
				s.done <- s.w.deliver(u.soft, d, u)
			}
		}()
	}
}

// add takes a new entry: filtered out (acknowledged at once), queued behind
// its key, or ready. Its ack deadline runs from when the feed received it,
// which may be a while ago (gathered at a takeover, or waiting in the pull
// buffer while the scheduler was full): one that is already a heartbeat
// old is reported in progress at once.
func (s *scheduler) add(m *audit.Message, now time.Time) {
	touched := m.Received
	if touched.IsZero() || now.Sub(touched) >= heartbeat {
		_ = m.InProgress()
		touched = now
	}
	if h, dup := s.bySeq[m.Seq]; dup {
		// JetStream redelivered an entry still held: keep one, newest handle.
		h.msg, h.touched = m, touched
		return
	}
	if !s.w.filter.Match(&m.Entry) {
		_ = m.Ack()
		s.w.m.filtered.Inc()
		return
	}
	h := &held{msg: m, key: m.Entry.Key(s.w.cfg.Delivery.OrderBy), touched: touched}
	if s.mustWait(h.key, m.Seq) {
		s.handBackLater(m, h.key, now)
		return
	}
	s.bySeq[m.Seq] = h
	s.bytes += len(m.Entry.Raw)
	if h.key == "" {
		s.makeReady(h, now)
		return
	}
	s.enqueue(h, now)
}

// mustWait tells whether an entry of key must wait in JetStream rather than
// be held: its key holds its share (perKey) already, or an earlier entry
// of its key was handed back and has not come again. One key retrying
// with many entries queued behind it thus holds a share of the webhook's
// entries, not all of them, and the other keys keep flowing. An entry
// that comes again after a hand-back is no longer waited for.
func (s *scheduler) mustWait(key string, seq uint64) bool {
	if key == "" || s.perKey == 0 {
		return false
	}
	if l := s.later[key]; l != nil {
		delete(l, seq)
		if len(l) == 0 {
			delete(s.later, key)
		}
		for other := range l {
			if other < seq {
				return true
			}
		}
	}
	return len(s.queues[key]) >= s.perKey
}

// handBackLater hands m back to come again after laterDelay, and notes it
// so that later entries of its key wait for it.
func (s *scheduler) handBackLater(m *audit.Message, key string, now time.Time) {
	_ = m.NakWithDelay(laterDelay)
	l := s.later[key]
	if l == nil {
		l = map[uint64]time.Time{}
		s.later[key] = l
	}
	l[m.Seq] = now
}

// forgetLater stops waiting for the entries handed back longer than
// laterForget ago.
func (s *scheduler) forgetLater(now time.Time) {
	for key, l := range s.later {
		for seq, at := range l {
			if now.Sub(at) > laterForget {
				delete(l, seq)
			}
		}
		if len(l) == 0 {
			delete(s.later, key)
		}
	}
}

// enqueue puts h in its key's queue in stream order: a redelivery can
// arrive after a later entry of its key (deadlines expire in their own
// order), and goes before it unless that one is already being sent.
func (s *scheduler) enqueue(h *held, now time.Time) {
	q := s.queues[h.key]
	i := len(q)
	for i > 0 && !q[i-1].sent && q[i-1].msg.Seq > h.msg.Seq {
		i--
	}
	q = slices.Insert(q, i, h)
	s.queues[h.key] = q
	if i > 0 {
		return
	}
	if len(q) > 1 { // h displaces the head that was ready
		old := q[1]
		old.since = time.Time{}
		s.ready = slices.DeleteFunc(s.ready, func(r *held) bool { return r == old })
	}
	s.makeReady(h, now)
}

func (s *scheduler) makeReady(h *held, now time.Time) {
	h.since = now
	s.ready = append(s.ready, h)
}

// finish releases a unit's entries; the next of each key becomes ready. A
// batch may hold several entries of one key (in order): the key's queue
// loses them all before its new head is made ready.
func (s *scheduler) finish(u *unit, now time.Time) {
	s.inflight--
	for _, h := range u.items {
		delete(s.bySeq, h.msg.Seq) // Seq never changes with a renewed handle
		s.bytes -= len(h.msg.Entry.Raw)
		if h.key == "" {
			continue
		}
		if q := s.queues[h.key][1:]; len(q) > 0 {
			s.queues[h.key] = q
		} else {
			delete(s.queues, h.key)
		}
	}
	if u.handedBack {
		// What queued behind a handed-back entry goes back too, so that
		// its key is redelivered in order.
		for _, h := range u.items {
			s.releaseKey(h.key)
		}
		return
	}
	for _, h := range u.items {
		if q := s.queues[h.key]; h.key != "" && len(q) > 0 && !q[0].sent && q[0].since.IsZero() {
			s.makeReady(q[0], now)
		}
	}
}

// next takes the next unit to send, or nil: none ready, maxInFlight reached,
// or a batch still filling (the timer then fires at its maxWait).
func (s *scheduler) next(now time.Time) *unit {
	if len(s.ready) == 0 || s.inflight >= s.w.cfg.Delivery.MaxInFlight {
		return nil
	}
	b := s.w.cfg.Batch
	n := min(len(s.ready), b.MaxEntries)
	items := make([]*held, n, max(n, min(b.MaxEntries, len(s.bySeq))))
	copy(items, s.ready)
	s.ready = append(s.ready[:0], s.ready[n:]...)
	items = s.withFollowers(items, b.MaxEntries)
	if len(items) < b.MaxEntries {
		if wait := b.MaxWait - now.Sub(items[0].since); wait > 0 {
			s.ready = append(items[:n:n], s.ready...)
			s.timer.Reset(wait)
			return nil
		}
	}
	for _, h := range items {
		h.sent = true
	}
	// In stream order, so a batch reads as the stream does and its
	// webhook-id (first and last sequence) spans it.
	slices.SortFunc(items, func(a, b *held) int { return cmp.Compare(a.msg.Seq, b.msg.Seq) })
	msgs := make([]*audit.Message, len(items))
	for i, h := range items {
		msgs[i] = h.msg
	}
	s.inflight++
	return &unit{items: items, msgs: msgs}
}

// withFollowers fills a batch with the entries queued behind its keys'
// heads: a batch is delivered as one, in stream order, so the entries of a
// key may share it without breaking their order.
func (s *scheduler) withFollowers(items []*held, max int) []*held {
	heads := len(items)
	for i := 0; i < heads && len(items) < max; i++ {
		if items[i].key == "" {
			continue
		}
		for _, f := range s.queues[items[i].key][1:] {
			if len(items) == max {
				break
			}
			items = append(items, f)
		}
	}
	return items
}

// touch tells JetStream that every held entry is still being worked on,
// so it does not redeliver it behind our back. All of them, in stream
// order, at once: their ack deadlines then expire in stream order if this
// process dies, and JetStream redelivers them in that order.
func (s *scheduler) touch(now time.Time) {
	all := make([]*held, 0, len(s.bySeq))
	for _, h := range s.bySeq {
		all = append(all, h)
	}
	slices.SortFunc(all, func(a, b *held) int { return cmp.Compare(a.msg.Seq, b.msg.Seq) })
	for _, h := range all {
		_ = h.msg.InProgress()
		h.touched = now
	}
	s.forgetLater(now)
}

// releaseKey hands back the entries of key that are not being sent.
func (s *scheduler) releaseKey(key string) {
	q := s.queues[key]
	if key == "" || len(q) == 0 {
		return
	}
	keep := 0
	for keep < len(q) && q[keep].sent {
		keep++
	}
	for _, h := range q[keep:] {
		s.release(h)
		s.ready = slices.DeleteFunc(s.ready, func(r *held) bool { return r == h })
	}
	if s.queues[key] = q[:keep]; keep == 0 {
		delete(s.queues, key)
	}
}

// letGo stops delivering what this replica holds, because another replica
// holds the pin now: units retrying stop at their next wait and are handed
// back, and everything else is handed back at once. An attempt under way
// finishes (it cannot be taken back); its entries are acknowledged or
// handed back, and the new pinned replica waits for that.
func (s *scheduler) letGo(ctx context.Context) {
	s.cancelSoft()
	s.soft, s.cancelSoft = context.WithCancel(ctx)
	s.handBack()
	clear(s.later) // the new pinned replica waits for what is out
}

// handBack returns every held entry that is not in flight to JetStream, for
// a prompt redelivery (shutdown).
func (s *scheduler) handBack() {
	for key, q := range s.queues {
		keep := 0 // the entries in flight, at the front of their queue
		for keep < len(q) && q[keep].sent {
			keep++
		}
		for _, h := range q[keep:] {
			s.release(h)
		}
		if s.queues[key] = q[:keep]; keep == 0 {
			delete(s.queues, key)
		}
	}
	for _, h := range s.ready {
		if h.key == "" {
			s.release(h)
		}
	}
	s.ready = s.ready[:0]
}

func (s *scheduler) release(h *held) {
	_ = h.msg.NakWithDelay(0)
	delete(s.bySeq, h.msg.Seq)
	s.bytes -= len(h.msg.Entry.Raw)
}

// Run delivers the feed's entries until ctx ends, then stops pulling, lets
// in-flight attempts finish within the shutdown timeout and hands the rest
// back to JetStream. A feed that ends by itself (a replay's bounded range)
// ends Run once every entry it gave is done. It returns nil.
func (w *Webhook) Run(ctx context.Context, feed Feed) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	in, lost, pumped := pump(feed)
	s := newScheduler(w)
	if hb, ok := feed.(interface{ HandsBack() bool }); ok && hb.HandsBack() {
		s.perKey = max(1, w.maxHeld/8)
	}
	s.soft, s.cancelSoft = context.WithCancel(ctx)
	defer func() { s.cancelSoft() }()
	s.workers(hard)
	defer close(s.work) // Run returns with nothing in flight
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		var inCh <-chan *audit.Message
		if len(s.bySeq) < w.maxHeld && s.bytes < MaxHeldBytes {
			inCh = in
		}
		select {
		case <-ctx.Done():
			return s.shutdown(feed, in, lost, pumped, cancelHard)
		case <-lost:
			s.letGo(ctx)
		case m := <-inCh:
			s.add(m, time.Now())
		case u := <-s.done:
			s.finish(u, time.Now())
		case <-tick.C:
			s.touch(time.Now())
		case <-s.timer.C:
		case <-pumped:
			pumped = nil // the feed ended by itself; what is held still finishes
		}
		s.dispatch(s.soft)
		if pumped == nil && s.inflight == 0 && len(s.bySeq) == 0 {
			return nil
		}
	}
}

// dispatch hands every unit that may go now to the delivery goroutines;
// next never hands out more than maxInFlight, so work never blocks.
func (s *scheduler) dispatch(soft context.Context) {
	now := time.Now()
	for u := s.next(now); u != nil; u = s.next(now) {
		u.soft = soft
		s.work <- u
	}
}

// pump reads the feed in its own goroutine; a blocked send on in is the
// back-pressure that stops pulling when enough entries are held. A lost
// pin is passed on lost, in order with the entries; a feed that can say
// so while the pump waits on a full scheduler (PinLost) ends that wait.
func pump(feed Feed) (<-chan *audit.Message, <-chan struct{}, <-chan struct{}) {
	in := make(chan *audit.Message)
	lost := make(chan struct{})
	ended := make(chan struct{})
	var pinLost <-chan struct{}
	if pl, ok := feed.(interface{ PinLost() <-chan struct{} }); ok {
		pinLost = pl.PinLost()
	}
	go func() {
		defer close(ended)
		for {
			m, err := feed.Next()
			if errors.Is(err, audit.ErrPinLost) {
				lost <- struct{}{}
				continue
			}
			if err != nil {
				return
			}
			select {
			case in <- m:
			case <-pinLost:
				// The scheduler is full and the pin moved: m goes back
				// for the new pinned replica, and the next Next reports
				// the loss, in order with the entries.
				_ = m.NakWithDelay(0)
			}
		}
	}()
	return in, lost, ended
}

// shutdown implements SPEC §5's SIGTERM: stop taking entries, finish or
// hand back what is in flight within the shutdown timeout.
func (s *scheduler) shutdown(feed Feed, in <-chan *audit.Message, lost, pumped <-chan struct{}, cancelHard context.CancelFunc) error {
	feed.Drain()
	s.handBack()
	deadline := time.NewTimer(s.w.grace)
	defer deadline.Stop()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for s.inflight > 0 || pumped != nil {
		select {
		case <-tick.C:
			// An attempt may outlast AckWait: keep what is in flight ours
			// until it is acknowledged or handed back, or another replica
			// would deliver it too.
			s.touch(time.Now())
		case m := <-in:
			_ = m.NakWithDelay(0)
		case <-lost:
			// Everything not in flight is already handed back.
		case u := <-s.done:
			s.finish(u, time.Now())
			s.handBack()
		case <-pumped:
			pumped = nil
		case <-deadline.C:
			cancelHard()
			feed.Stop()
		}
	}
	return nil
}
