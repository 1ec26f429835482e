package audit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ReplayFrom is where a replay starts in the audit stream: a sequence, or
// the first entry the stream stored at or after a time.
type ReplayFrom struct {
	Seq  uint64
	Time time.Time
}

// Replay reads the audit stream again for one webhook (`auditrelay
// replay`), from a point to the entry that was last when it began, on an
// ephemeral consumer: the webhook's durable consumer and every other
// webhook are left alone. It is a sink.Feed; Done is closed once every
// entry it handed out was acknowledged (delivered, filtered or
// dead-lettered).
type Replay struct {
	src     *Source
	b       *bounded
	begun   time.Time // retry.maxAge counts from here (Message.RetryFrom)
	round   uint64    // of the dead letters it stores: begun, see DeadLetter.Round
	invalid atomic.Int64
}

// Replay starts a replay for webhook name, reading at most buffer entries
// ahead.
func (s *Source) Replay(ctx context.Context, name string, from ReplayFrom, buffer int) (*Replay, error) {
	cc := jetstream.ConsumerConfig{Description: "auditrelay replay for webhook " + name}
	if from.Seq > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from.Seq
	} else {
		t := from.Time
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	b, err := s.bounded(ctx, s.cfg.Stream.Name, cc, buffer)
	if err != nil {
		return nil, err
	}
	begun := time.Now()
	return &Replay{src: s, b: b, begun: begun, round: uint64(begun.UnixNano())}, nil
}

// Next returns the next entry to replay. Entries that are not audit entries
// are counted and skipped: they were dead-lettered when they came in.
func (r *Replay) Next() (*Message, error) {
	for {
		msg, md, err := r.b.next()
		if err != nil {
			return nil, err
		}
		seq := md.Sequence.Stream
		m := &Message{Seq: seq, Time: md.Timestamp, RetryFrom: r.begun, Round: r.round, msg: held{r.b, seq}}
		m.Entry, err = Decode(msg.Data(), r.src.cfg.MaxEntryBytes)
		if errors.Is(err, ErrInvalid) {
			r.invalid.Add(1)
			r.b.passed(seq, md.NumPending)
			continue
		}
		r.b.hold(seq)
		r.b.passed(seq, md.NumPending)
		return m, nil
	}
}

// Drain stops reading; what was read is still returned by Next.
func (r *Replay) Drain() { r.b.stop(true) }

// Stop stops reading.
func (r *Replay) Stop() { r.b.stop(false) }

// Done is closed when every entry up to the end is done, or the read failed.
func (r *Replay) Done() <-chan struct{} { return r.b.fin }

// Err is why the read failed, nil when it did not.
func (r *Replay) Err() error { return r.b.error() }

// Finished is how many entries are done so far.
func (r *Replay) Finished() int { return r.b.finished() }

// Invalid is how many messages were skipped as not audit entries.
func (r *Replay) Invalid() int { return int(r.invalid.Load()) }

// End is the last stream sequence the replay reads.
func (r *Replay) End() uint64 { return r.b.end }

// Close stops reading and deletes the replay's consumer.
func (r *Replay) Close() { r.b.close(r.src.js, r.src.cfg.Stream.Name) }

// held acknowledges an entry a bounded read handed out: the entry is done.
// A hand-back (NakWithDelay, only on shutdown) leaves it open.
type held struct {
	b   *bounded
	key uint64
}

func (h held) Ack() error                       { h.b.release(h.key); return nil }
func (h held) InProgress() error                { return nil }
func (h held) NakWithDelay(time.Duration) error { return nil }
