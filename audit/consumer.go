package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/config"
)

// ErrClosed is returned by Feed.Next once the feed is drained or stopped.
var ErrClosed = errors.New("feed closed")

// ConsumerName is the durable consumer of webhook name: <prefix>-<name>, with
// the name's characters outside [A-Za-z0-9_-] replaced by '_'.
func ConsumerName(prefix, name string) string { return prefix + "-" + config.SubjectToken(name) }

// IntakeName is the consumer that counts every entry and dead-letters the
// invalid ones, once for all webhooks. The '_' keeps it apart from every
// webhook's <prefix>-<name>.
func IntakeName(prefix string) string { return prefix + "_intake" }

// Feed is one durable consumer, read entry by entry.
type Feed struct {
	name    string
	cons    jetstream.Consumer
	it      jetstream.MessagesContext
	buffer  int
	max     int64
	log     *slog.Logger
	cache   *decodeCache
	closing atomic.Bool
	mu      sync.Mutex   // guards it, replaced when a subscription is lost
	pinned  bool         // a pinned-client consumer: pull with PriorityGroup
	pin     atomic.Value // string: the pin id last received, see notePin
	// gathered are the entries sorted at a takeover, handed out first;
	// only next's caller touches them.
	gathered []jetstream.Msg
	unpin    func(context.Context) error // see Release
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
	return s.feed(ctx, cc, o.MaxAckPending)
}

func (s *Source) feed(ctx context.Context, cc jetstream.ConsumerConfig, buffer int) (*Feed, error) {
	cons, err := s.bindConsumer(ctx, cc)
	if err != nil {
		return nil, err
	}
	f := &Feed{name: cc.Durable, cons: cons, buffer: min(buffer, 256), max: s.cfg.MaxEntryBytes, log: s.log, cache: &s.cache}
	f.pinned, f.unpin = isPinned(cons.CachedInfo().Config), s.unpinner(cc.Durable)
	if isPinned(cc) && !f.pinned {
		s.log.Warn("NATS server ignored the pinned priority group: plain consumer; replicas would not keep order", "consumer", cc.Durable)
	}
	if f.it, err = f.pull(); err != nil {
		return nil, err
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
	it, err := f.cons.Messages(f.pullOptions()...)
	if err != nil {
		return nil, fmt.Errorf("pull from consumer %s: %w", f.name, err)
	}
	return it, nil
}

// pullOptions: a pinned consumer is pulled in its priority group, with
// short requests so the pinned client renews its pin every pullExpiry.
func (f *Feed) pullOptions() []jetstream.PullMessagesOpt {
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(f.buffer)}
	if f.pinned {
		opts = append(opts, jetstream.PullPriorityGroup(PriorityGroup), jetstream.PullExpiry(pullExpiry))
	}
	return opts
}

func setStart(cc *jetstream.ConsumerConfig, st config.Start) {
	switch st.Mode {
	case "all":
		cc.DeliverPolicy = jetstream.DeliverAllPolicy
	case "time":
		t := st.Time
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
}

// Name is the consumer's name.
func (f *Feed) Name() string { return f.name }

// Next blocks until the next valid entry. Invalid entries are acknowledged
// and skipped: the intake consumer dead-letters them, once for all webhooks.
// After Drain it returns what was already pulled, then ErrClosed.
func (f *Feed) Next() (*Message, error) {
	for {
		msg, err := f.next()
		if err != nil {
			return nil, err
		}
		m, err := toMessage(msg, f.max, f.cache)
		if errors.Is(err, ErrInvalid) {
			_ = msg.Ack()
			continue
		}
		return m, err
	}
}

// next returns the next message, riding out what a pull subscription can
// meet while it runs: missed heartbeats are passed over, and a subscription
// the client ended by itself (connection closed, consumer recreated) is
// started again until the feed is drained or stopped.
func (f *Feed) next() (jetstream.Msg, error) {
	if msg := f.popGathered(); msg != nil {
		return msg, nil
	}
	msg, err := f.receive()
	if err != nil {
		return nil, err
	}
	if f.notePin(msg) {
		f.gathered = f.gatherTakeover(msg)
		return f.popGathered(), nil
	}
	return msg, nil
}

// receive is next without the takeover: one message from the subscription.
func (f *Feed) receive() (jetstream.Msg, error) {
	for backoff := 100 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		msg, err := f.iter().Next()
		if err == nil {
			return msg, nil
		}
		if f.closing.Load() {
			return nil, ErrClosed
		}
		if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			f.log.Warn("pulling from consumer", "consumer", f.name, "err", err)
			continue
		}
		time.Sleep(backoff)
		if it, err := f.pull(); err == nil {
			f.setIter(it)
		} else {
			f.log.Warn("consumer subscription lost; retrying", "consumer", f.name, "err", err)
		}
	}
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

func toMessage(msg jetstream.Msg, max int64, cache *decodeCache) (*Message, error) {
	md, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	m := &Message{Seq: md.Sequence.Stream, Time: md.Timestamp, msg: msg}
	m.Entry, err = cache.decode(m.Seq, msg.Data(), max)
	return m, err
}

// Drain stops pulling; entries already pulled are still returned by Next.
func (f *Feed) Drain() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing.Store(true)
	f.it.Drain()
}

// Stop stops pulling and drops what was pulled (JetStream redelivers it).
func (f *Feed) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closing.Store(true)
	f.it.Stop()
}
