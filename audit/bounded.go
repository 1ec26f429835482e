package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// oneOffInactive is how long the server keeps a one-off consumer (replay,
// dead-letter list and redrive) that nobody reads: a tool that dies leaves
// nothing behind for long. A tool that lives but stops reading for longer
// (its endpoint down) creates the consumer again (recoverRead). A var for
// the tests.
var oneOffInactive = time.Minute

// bounded reads an ephemeral consumer up to the last message its stream
// held when the read began, and knows when everything it handed out is
// done. Messages published later are never handed out, so a tool ends
// even while entries keep coming.
//
// The consumer does not ask for acknowledgements: a one-off reader has no
// position worth keeping, and what it hands out is tracked here, by key.
type bounded struct {
	name string
	cons jetstream.Consumer
	it   jetstream.MessagesContext
	end  uint64 // last stream sequence to hand out
	log  *slog.Logger
	// To create the consumer again when the server deleted it: a reader
	// that stops reading (its endpoint down) outlasts oneOffInactive.
	js     jetstream.JetStream
	stream string
	cc     jetstream.ConsumerConfig
	buffer int
	last   uint64 // last stream sequence next returned; only next touches it

	mu      sync.Mutex
	open    map[uint64]struct{} // handed out, not yet done
	done    int                 // released so far
	reached bool                // nothing more to hand out
	closing bool
	err     error
	fin     chan struct{} // closed once reached and nothing open, or failed
	ended   bool          // fin is closed
}

// bounded creates an ephemeral consumer of stream with cc's start and
// filter, reading at most buffer messages ahead.
func (s *Source) bounded(ctx context.Context, stream string, cc jetstream.ConsumerConfig, buffer int) (*bounded, error) {
	st, err := s.js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", stream, err)
	}
	cc.AckPolicy, cc.InactiveThreshold, cc.MemoryStorage = jetstream.AckNonePolicy, oneOffInactive, true
	cons, err := s.js.CreateConsumer(ctx, stream, cc)
	if err != nil {
		return nil, fmt.Errorf("create consumer on %s: %w", stream, err)
	}
	b := &bounded{name: cons.CachedInfo().Name, cons: cons, end: st.CachedInfo().State.LastSeq, log: s.log,
		js: s.js, stream: stream, cc: cc, buffer: min(max(buffer, 1), 1024),
		open: map[uint64]struct{}{}, fin: make(chan struct{})}
	if b.end == 0 || cons.CachedInfo().NumPending == 0 || cc.OptStartSeq > b.end {
		b.reached, b.ended = true, true
		close(b.fin)
		return b, nil
	}
	if b.it, err = b.pull(cons); err != nil {
		return nil, err
	}
	return b, nil
}

// pull reads cons. A missing heartbeat is reported rather than ridden out:
// the server may have deleted the consumer meanwhile, which the read would
// never learn. Short pull requests make that known within 2 × pullExpiry.
func (b *bounded) pull(cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(b.buffer), jetstream.PullExpiry(pullExpiry),
		jetstream.WithMessagesErrOnMissingHeartbeat(true))
	if err != nil {
		return nil, fmt.Errorf("pull from consumer on %s: %w", b.stream, err)
	}
	return it, nil
}

// recoverRead is called when the read ended or went silent without a
// stop: when the server deleted the consumer (nobody read it for
// oneOffInactive while the reader's endpoint was down), it is created
// again, starting right after the last message read, and the read goes
// on. It reports whether it did; false with a nil error: the consumer is
// still there.
func (b *bounded) recoverRead() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := b.js.Consumer(ctx, b.stream, b.currentName())
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, err
	}
	cc := b.cc
	cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = jetstream.DeliverByStartSequencePolicy, b.last+1, nil
	cons, err := b.js.CreateConsumer(ctx, b.stream, cc)
	if err != nil {
		return false, fmt.Errorf("create again: %w", err)
	}
	it, err := b.pull(cons)
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closing {
		it.Stop()
		return false, ErrClosed
	}
	b.it.Stop()
	b.log.Info("one-off consumer was deleted by the server while nothing read it; created again", "consumer", b.name,
		"new", cons.CachedInfo().Name, "resumeAt", b.last+1)
	b.name, b.cons, b.it = cons.CachedInfo().Name, cons, it
	return true, nil
}

func (b *bounded) iter() jetstream.MessagesContext {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.it
}

func (b *bounded) currentName() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.name
}

// next returns the next message up to the end, or ErrClosed. The caller
// holds or skips it, then calls passed.
func (b *bounded) next() (jetstream.Msg, *jetstream.MsgMetadata, error) {
	for {
		if b.isReached() {
			return nil, nil, ErrClosed
		}
		msg, err := b.iter().Next()
		if err != nil {
			if b.isClosing() {
				return nil, nil, ErrClosed
			}
			ended := errors.Is(err, jetstream.ErrMsgIteratorClosed)
			if ended || errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				again, rerr := b.recoverRead()
				switch {
				case again:
					continue
				case errors.Is(rerr, ErrClosed):
					return nil, nil, ErrClosed
				case ended:
					b.fail(fmt.Errorf("consumer %s: subscription ended: %w", b.currentName(), errors.Join(err, rerr)))
					return nil, nil, ErrClosed
				}
				err = errors.Join(err, rerr)
			}
			b.log.Warn("pulling from consumer", "consumer", b.currentName(), "err", err)
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			b.fail(fmt.Errorf("consumer %s: message metadata: %w", b.name, err))
			return nil, nil, ErrClosed
		}
		if md.Sequence.Stream <= b.last {
			continue // read before the consumer was created again
		}
		if md.Sequence.Stream > b.end {
			b.passed(md.Sequence.Stream, 0)
			continue
		}
		b.last = md.Sequence.Stream
		return msg, md, nil
	}
}

// hold records key as handed out; false when it already is.
func (b *bounded) hold(key uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.open[key]; dup {
		return false
	}
	b.open[key] = struct{}{}
	return true
}

// passed tells that the message at seq was held or skipped; with nothing
// left after it (pending 0) or at the end, nothing more is handed out.
func (b *bounded) passed(seq, pending uint64) {
	if seq < b.end && pending > 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.reached {
		b.reached = true
		b.it.Stop()
	}
	b.finishLocked()
}

// release records key as done.
func (b *bounded) release(key uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.open[key]; !ok {
		return
	}
	delete(b.open, key)
	b.done++
	b.finishLocked()
}

func (b *bounded) finishLocked() {
	if b.reached && len(b.open) == 0 {
		b.endLocked()
	}
}

func (b *bounded) endLocked() {
	if !b.ended {
		b.ended = true
		close(b.fin)
	}
}

// fail ends the read: Done is closed and Err says why.
func (b *bounded) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return
	}
	b.err, b.reached = err, true
	b.it.Stop()
	b.endLocked()
}

func (b *bounded) isReached() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reached
}

func (b *bounded) isClosing() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closing
}

// stop stops pulling; drain lets buffered messages still be read.
func (b *bounded) stop(drain bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closing = true
	switch {
	case b.it == nil:
	case drain:
		b.it.Drain()
	default:
		b.it.Stop()
	}
}

// finished is how many keys are done so far.
func (b *bounded) finished() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.done
}

// error is why the read failed, nil when it did not.
func (b *bounded) error() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// close stops pulling and deletes the consumer.
func (b *bounded) close(js jetstream.JetStream, stream string) {
	b.stop(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, stream, b.currentName()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		b.log.Warn("consumer not deleted; the server removes it once inactive", "consumer", b.name, "err", err)
	}
}
