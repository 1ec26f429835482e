package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/backoff"
)

// ErrClosed is returned by Feed.Next once the feed is drained or stopped.
var ErrClosed = errors.New("feed closed")

// ErrPinLost is returned by Feed.Next when the server answered that this
// replica is no longer the consumer's pinned client (a NATS restart, a
// consumer leader change, or a pull gap longer than PinnedTTL gave the pin
// to another). The caller must stop delivering what it holds and hand it
// back: the new pinned client waits for that before it starts (see
// gatherTakeover). The feed goes on; Next may pin this replica again.
var ErrPinLost = errors.New("pin lost: another replica delivers for the consumer")

// ConsumerName is the durable consumer of webhook name: <prefix>-<name>, with
// the name's characters outside [A-Za-z0-9_-] replaced by '_'.
func ConsumerName(prefix, name string) string { return prefix + "-" + config.SubjectToken(name) }

// IntakeName is the consumer that counts every entry and dead-letters the
// invalid ones, once for all webhooks. The '_' keeps it apart from every
// webhook's <prefix>-<name>.
func IntakeName(prefix string) string { return prefix + "_intake" }

// Feed is one durable consumer, read entry by entry. It never ends by
// itself: a subscription that breaks is started again, and a consumer that
// disappears (deleted by hand, a stream restored from a backup) is created
// again, resuming after the last entry known acknowledged. Until then
// Fault says why it cannot pull.
type Feed struct {
	name    string
	src     *Source
	cc      jetstream.ConsumerConfig // as bound, to create it again
	cons    jetstream.Consumer       // guarded by mu: replaced when created again
	it      jetstream.MessagesContext
	floor   atomic.Uint64 // the consumer's ack floor (stream sequence), last seen
	fault   atomic.Pointer[error]
	stopped chan struct{} // closed by Drain or Stop: ends waits between retries
	stop    sync.Once
	max     int64
	log     *slog.Logger
	cache   *decodeCache
	use     cacheUse // useShare for a webhook's feed (see decodeCache)
	closing atomic.Bool
	mu      sync.Mutex   // guards it, replaced when a subscription is lost
	pinned  bool         // a pinned-client consumer: pull with PriorityGroup
	ordered bool         // entries of a key must keep their order
	settled bool         // an unpinned ordered feed gathered its first entries
	pin     atomic.Value // string: the pin id last received, see notePin
	// gathered are the entries sorted at a takeover, handed out first;
	// only next's caller touches them.
	gathered []pulled
	// lastFirst is the last stream sequence this pinned feed received for
	// the first time under its pin; only next's caller touches it.
	lastFirst uint64
	// own is what this feed handed out and is not yet acknowledged or
	// handed back: what this replica holds.
	own   ownSet
	unpin func(context.Context) error // see Release
	// lost is set when a renewal (keepPin) was answered that the pin is
	// gone; the next receive reports ErrPinLost. lostCh says so at once to
	// a caller busy elsewhere (PinLost); lostMu keeps the two together.
	lost   bool
	lostCh chan struct{}
	lostMu sync.Mutex
}

// FeedOptions shape a webhook's consumer.
type FeedOptions struct {
	// MaxAckPending bounds the entries held unacknowledged: the memory a
	// webhook may use while an endpoint is down or a key is retrying.
	MaxAckPending int
	// Start is where a new consumer begins; an existing one resumes.
	Start config.Start
	// Ordered webhooks (orderBy other than none) get a pinned-client
	// consumer, so that of several replicas exactly one delivers to them.
	Ordered bool
}

// Feed creates or binds the durable consumer of webhook name and starts
// pulling from it.
func (s *Source) Feed(ctx context.Context, name string, o FeedOptions) (*Feed, error) {
	cname := ConsumerName(s.cfg.DurablePrefix, name)
	cc := jetstream.ConsumerConfig{
		Durable: cname, Description: "auditrelay webhook " + name,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: AckWait, MaxDeliver: -1,
		MaxAckPending: o.MaxAckPending,
	}
	setStart(&cc, o.Start)
	if o.Ordered {
		s.pinIfSupported(&cc)
	}
	f, err := s.feed(ctx, cc)
	if err != nil {
		return nil, err
	}
	f.ordered = o.Ordered
	f.use = useShare
	s.cache.addReader()
	return f, nil
}

func (s *Source) feed(ctx context.Context, cc jetstream.ConsumerConfig) (*Feed, error) {
	cons, err := s.bindConsumer(ctx, cc)
	if err != nil {
		return nil, err
	}
	f := &Feed{name: cc.Durable, src: s, cc: cc, cons: cons, max: s.cfg.MaxEntryBytes,
		log: s.log, cache: &s.cache, stopped: make(chan struct{}), lostCh: make(chan struct{}, 1)}
	f.noteInfo(cons.CachedInfo())
	f.pinned, f.unpin = isPinned(cons.CachedInfo().Config), s.unpinner(cc.Durable)
	if isPinned(cc) && !f.pinned {
		s.log.Warn("NATS server ignored the pinned priority group: plain consumer; replicas would not keep order", "consumer", cc.Durable)
	}
	if f.it, err = f.pull(); err != nil {
		return nil, err
	}
	if f.pinned {
		go f.keepPin()
	}
	return f, nil
}

// bindConsumer creates the durable or updates it to cc. An existing one
// resumes where it stopped: its start cannot change. Its priority policy
// can (nats-server 2.11+ allows the update, keeping the acked state); when
// a server refuses, the error says what to do rather than losing that state.
func (s *Source) bindConsumer(ctx context.Context, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var old *jetstream.ConsumerConfig
	if c, err := s.js.Consumer(ctx, s.cfg.Stream.Name, cc.Durable); err == nil {
		oc := c.CachedInfo().Config
		old = &oc
		cc.DeliverPolicy, cc.OptStartTime, cc.OptStartSeq = oc.DeliverPolicy, oc.OptStartTime, oc.OptStartSeq
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("look up consumer %s: %w", cc.Durable, err)
	}
	cons, err := s.js.CreateOrUpdateConsumer(ctx, s.cfg.Stream.Name, cc)
	switch {
	case err != nil && old != nil && old.PriorityPolicy != cc.PriorityPolicy:
		return nil, policyChangeError(cc.Durable, old.PriorityPolicy, cc.PriorityPolicy, err)
	case err != nil:
		return nil, fmt.Errorf("bind consumer %s: %w", cc.Durable, err)
	}
	if old != nil && old.PriorityPolicy != cc.PriorityPolicy {
		s.log.Info("consumer priority policy changed", "consumer", cc.Durable,
			"from", policyName(old.PriorityPolicy), "to", policyName(cc.PriorityPolicy))
	}
	return cons, nil
}

func (f *Feed) pull() (jetstream.MessagesContext, error) {
	it, err := f.consumer().Messages(f.pullOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", f.name, err)
	}
	return it, nil
}

// pullOptions: a pinned consumer is pulled in its priority group, with
// short requests so the pinned client renews its pin every pullExpiry.
// The client buffers at most pullMessages; each pull asks for at most
// pullBytes, and a new one goes out only as entries are taken (Next), one
// at a time: large entries are pulled a few at a time, not pullMessages.
// (PullMaxBytes alone would size the client's buffer for a million
// messages: 8 MB of memory per consumer.)
func (f *Feed) pullOptions() []jetstream.PullMessagesOpt {
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessagesWithBytesLimit(pullMessages, f.src.pullBytes())}
	if f.pinned {
		opts = append(opts, jetstream.PullPriorityGroup(PriorityGroup), jetstream.PullExpiry(pullExpiry))
	}
	return opts
}

func setStart(cc *jetstream.ConsumerConfig, st config.Start) {
	switch st.Mode {
	case config.StartAll:
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	case config.StartTime:
		t := st.Time
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
}

// HandsBack reports that an entry handed back (NakWithDelay) comes again:
// the scheduler may send an entry back to wait in JetStream.
func (f *Feed) HandsBack() bool { return true }

// pullMessages is how many messages a feed's client buffers at most.
const pullMessages = 256

// PullBytes is the least a pull asks for: the largest message it must be
// able to take is the server's max_payload, plus headers and subject.
const PullBytes = 1 << 20

// pullBytes bounds one pull request, and so what the client buffers for a
// feed, by bytes: PullBytes, or one message of the server's max_payload
// (with room for its headers and subject) when that is larger. A message
// larger than a pull's bytes could never be pulled.
func (s *Source) pullBytes() int {
	return max(PullBytes, int(s.nc.MaxPayload())+64<<10)
}

// Name is the consumer's name.
func (f *Feed) Name() string { return f.name }

// Next blocks until the next valid entry. Invalid entries are acknowledged
// and skipped: the intake consumer dead-letters them, once for all webhooks.
// After Drain it returns what was already pulled, then ErrClosed, the only
// error it returns: a feed does not end by itself.
//
// A pinned feed also returns ErrPinLost, and goes on.
func (f *Feed) Next() (*Message, error) {
	for {
		p, err := f.next()
		if err != nil {
			return nil, err
		}
		m, err := toMessage(p, f.max, f.cache, f.use)
		switch {
		case errors.Is(err, ErrInvalid):
			_ = p.msg.Ack()
		case err != nil:
			// Not a JetStream message (no metadata): nothing to deliver or ack.
			f.log.Warn("passing over a message", "consumer", f.name, "err", err)
		case f.own.wasDone(m.Seq):
			// A stale copy of an entry already acknowledged.
			_ = p.msg.Ack()
		default:
			m.Received = p.at
			m.msg = f.own.track(m.Seq, p.msg)
			return m, nil
		}
	}
}

// pulled is a message, where it sits in the stream (read once, when it
// is pulled) and when its ack deadline last started.
type pulled struct {
	msg jetstream.Msg
	meta
	err error // the message carries no JetStream metadata
	at  time.Time
}

// meta is where a JetStream message sits: its stream sequence, how many
// times it was delivered, when the stream stored it.
type meta struct {
	seq, delivered uint64
	time           time.Time
}

// pull reads msg's place in the stream from its ack subject without
// allocating (ackMeta), else from nats.go's metadata.
func pull(msg jetstream.Msg, at time.Time) pulled {
	p := pulled{msg: msg, at: at}
	if seq, delivered, ts, ok := ackMeta(msg.Reply()); ok {
		p.meta = meta{seq, delivered, ts}
		return p
	}
	md, err := msg.Metadata()
	if err != nil {
		p.err = fmt.Errorf("message metadata: %w", err)
		return p
	}
	p.meta = meta{md.Sequence.Stream, md.NumDelivered, md.Timestamp}
	return p
}

// next returns the next message, riding out what a pull subscription can
// meet while it runs: missed heartbeats are passed over, and a subscription
// the client ended by itself (connection closed, consumer recreated) is
// started again until the feed is drained or stopped.
//
// The first message after this replica was pinned, and the first an
// ordered feed without pinning receives, start a gathering (see
// gatherTakeover) whose entries are handed out first, in stream order.
func (f *Feed) next() (pulled, error) {
	for {
		if p, ok := f.popGathered(); ok {
			return p, nil
		}
		msg, err := f.receive()
		if err != nil {
			return pulled{}, err
		}
		p := pull(msg, time.Now())
		repinned := f.notePin(msg)
		if repinned {
			f.lastFirst = 0
		}
		gap := !repinned && f.sawGap(p)
		if !repinned && !gap && !f.firstUnpinned() {
			return p, nil
		}
		if gap {
			f.log.Warn("entries missing from the pull (the client dropped them); gathering until they come again",
				"consumer", f.name, "after", f.lastFirst)
		}
		if f.gathered, err = f.gatherTakeover(p); err != nil {
			f.lastFirst = 0
			return pulled{}, err
		}
		for _, g := range f.gathered {
			f.sawGap(g)
		}
	}
}

// sawGap tells whether msg, delivered for the first time to this pinned
// feed, skips entries: the server hands a pinned client new entries in
// stream order, so the skipped ones were delivered and lost on the way
// (nats.go drops what overflows its pull buffer, which a reconnect or a
// moved pin can cause). They come again once their ack deadline expires,
// after later entries of their keys: a gathering waits for them. An
// entry no longer in the stream also leaves a gap; the gathering then
// finds nothing held elsewhere and ends at once.
func (f *Feed) sawGap(p pulled) bool {
	if !f.pinned || !p.firstDelivery() {
		return false
	}
	seq := p.seq
	gap := f.lastFirst != 0 && seq > f.lastFirst+1
	f.lastFirst = max(f.lastFirst, seq)
	return gap
}

// firstUnpinned reports, once, that an ordered feed without pinning (a
// server without priority groups) is at its first message: entries a
// crashed process held come back as their ack deadlines expire, and
// must go out before anything later of their keys.
func (f *Feed) firstUnpinned() bool {
	if !f.ordered || f.pinned || f.settled {
		return false
	}
	f.settled = true
	return true
}

// receive is next without the takeover: one message from the subscription.
// A subscription that ends without Drain or Stop (connection closed,
// consumer deleted, or Status found the consumer gone) is started again,
// with backoff, until it pulls again.
func (f *Feed) receive() (jetstream.Msg, error) {
	retry := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		msg, err := f.iter().Next()
		if f.pinned && f.takeLost() {
			// A renewal found the pin gone: what this subscription still
			// buffers was pulled under it. keepPin stopped it; a message
			// that still came is handed back for the new pinned client.
			if err == nil {
				_ = msg.NakWithDelay(0)
			}
			f.pin.Store("")
			f.lastFirst = 0
			f.log.Warn("no longer the pinned client: handing back what this replica holds", "consumer", f.name)
			return nil, ErrPinLost
		}
		if err == nil {
			return msg, nil
		}
		if f.closing.Load() {
			return nil, ErrClosed
		}
		if errors.Is(err, jetstream.ErrPinIDMismatch) && f.pinned && f.pinID() != "" {
			f.pin.Store("")
			f.log.Warn("no longer the pinned client: handing back what this replica holds", "consumer", f.name)
			return nil, ErrPinLost
		}
		if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			// A status the subscription rides out (pin moved, leader
			// changed), or its last word (consumer deleted): then the next
			// call reports the subscription closed.
			if errors.Is(err, jetstream.ErrConsumerDeleted) {
				f.setFault(err)
			}
			f.log.Warn("pulling from consumer", "consumer", f.name, "err", err)
			continue
		}
		wait := retry.Next()
		if !backoff.Sleep(f.stopped, wait) {
			return nil, ErrClosed
		}
		if err := f.resubscribe(); err != nil {
			f.setFault(err)
			f.log.Warn("cannot pull from consumer; retrying", "consumer", f.name, "err", err, "retryIn", wait)
		}
	}
}

// resubscribe binds the consumer again, creating it when it is gone, and
// starts a new subscription.
func (f *Feed) resubscribe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stream := f.src.cfg.Stream.Name
	cons, err := f.src.js.Consumer(ctx, stream, f.name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cons, err = f.recreate(ctx, stream)
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", f.name, err)
	}
	f.noteInfo(cons.CachedInfo())
	f.mu.Lock()
	f.cons = cons
	f.mu.Unlock()
	it, err := f.pull()
	if err != nil {
		return err
	}
	f.setIter(it)
	f.setFault(nil)
	return nil
}

// recreate creates the vanished consumer again, starting right after the
// last ack floor seen: never skipping an entry, at worst repeating those
// acknowledged since that floor was read.
func (f *Feed) recreate(ctx context.Context, stream string) (jetstream.Consumer, error) {
	cc := f.cc
	start := f.floor.Load() + 1
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartSequencePolicy, start, nil
	cons, err := f.src.js.CreateConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("create again: %w", err)
	}
	f.log.Warn("consumer was gone: created again, resuming after the last entry acknowledged",
		"consumer", f.name, "resumeAt", start)
	return cons, nil
}

// noteInfo keeps what recreate needs from a look at the consumer.
func (f *Feed) noteInfo(info *jetstream.ConsumerInfo) {
	if info != nil {
		f.floor.Store(info.AckFloor.Stream)
	}
}

// noteGone is told that the consumer or its stream is gone: the feed
// cannot pull, and its subscription is ended so that receive binds again.
func (f *Feed) noteGone(err error) {
	if f.closing.Load() {
		return
	}
	f.setFault(err)
	f.iter().Stop()
}

// Fault is why the feed cannot pull now, nil while it can.
func (f *Feed) Fault() error {
	if p := f.fault.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *Feed) setFault(err error) {
	if err == nil {
		f.fault.Store(nil)
		return
	}
	f.fault.Store(&err)
}

func (f *Feed) consumer() jetstream.Consumer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cons
}

func (f *Feed) iter() jetstream.MessagesContext {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.it
}

// setIter installs a new subscription, unless the feed was closed meanwhile.
func (f *Feed) setIter(it jetstream.MessagesContext) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing.Load() {
		it.Stop()
		return
	}
	f.it = it
}

func toMessage(p pulled, max int64, cache *decodeCache, use cacheUse) (*Message, error) {
	if p.err != nil {
		return nil, p.err
	}
	m := &Message{Seq: p.seq, Time: p.time, msg: p.msg}
	var err error
	m.Entry, err = cache.decode(m.Seq, p.msg.Data(), max, use)
	return m, err
}

// Drain stops pulling; entries already pulled are still returned by Next.
func (f *Feed) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing.Store(true)
	f.stop.Do(f.stopping)
	f.it.Drain()
}

// stopping runs once, when the feed is drained or stopped.
func (f *Feed) stopping() {
	close(f.stopped)
	if f.use == useShare {
		f.cache.dropReader()
	}
}

// Stop stops pulling and drops what was pulled (JetStream redelivers it).
func (f *Feed) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing.Store(true)
	f.stop.Do(f.stopping)
	f.it.Stop()
}

// ackMeta reads what auditrelay needs from a JetStream message's reply
// subject without allocating: its stream sequence, how many times it was
// delivered and when the stream stored it. The subject is
// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<tm>.<pending>, or,
// from newer servers, with <domain>.<account hash> after $JS.ACK and a
// token or more at the end. ok is false for anything else.
func ackMeta(reply string) (seq, delivered uint64, ts time.Time, ok bool) {
	rest, found := strings.CutPrefix(reply, "$JS.ACK.")
	if !found {
		return 0, 0, time.Time{}, false
	}
	n := strings.Count(rest, ".") + 3 // tokens, $JS and ACK included
	first := 4                        // <delivered> in the old form
	switch {
	case n == 9:
	case n >= 11:
		first = 6
	default:
		return 0, 0, time.Time{}, false
	}
	var nums [4]uint64 // delivered, sseq, cseq, tm
	for i := 2; i < first+4; i++ {
		var tok string
		tok, rest, _ = strings.Cut(rest, ".")
		if i < first {
			continue
		}
		v, good := parseNum(tok)
		if !good {
			return 0, 0, time.Time{}, false
		}
		nums[i-first] = v
	}
	return nums[1], nums[0], time.Unix(0, int64(nums[3])), true
}

func parseNum(s string) (uint64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
