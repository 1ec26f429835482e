package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StoredDeadLetter is a dead letter as the dead-letter stream keeps it.
type StoredDeadLetter struct {
	DeadLetter
	// Seq and Time are the dead letter's place in the dead-letter stream;
	// DeadLetter.StreamSeq and StreamTime are the entry's in the audit stream.
	Seq  uint64
	Time time.Time
	// Data is the entry as published. For a dead letter stored without
	// its body (BodyOmitted) it is read from the audit stream, and stays
	// nil once the stream no longer keeps the entry.
	Data []byte
	// BodyOmitted dead letters were too large for the server's max_payload
	// and were stored without the entry (HeaderBody).
	BodyOmitted bool
	// Entry is Data decoded; zero for an invalid entry (Webhook "").
	Entry Entry
}

// deadLetterFilter is the subject of webhook's dead letters: all of them
// for "", the invalid entries for InvalidToken.
func (s *Source) deadLetterFilter(webhook string) string {
	switch webhook {
	case "":
		return s.dlPrefix + ".>"
	case InvalidToken:
		return s.DeadLetterSubject("")
	}
	return s.DeadLetterSubject(webhook)
}

// ListDeadLetters calls fn with each dead letter of webhook ("" for all,
// InvalidToken for the invalid entries) in the order they were stored, up
// to the last one stored when it began. No dead-letter stream means none.
func (s *Source) ListDeadLetters(ctx context.Context, webhook string, fn func(*StoredDeadLetter) error) error {
	b, err := s.deadLetterReader(ctx, webhook)
	if b == nil {
		return err
	}
	defer b.close(s.js, DeadLetterStream)
	stop := context.AfterFunc(ctx, func() { b.stop(false) })
	defer stop()
	for {
		msg, md, err := b.next()
		if err != nil {
			return errors.Join(b.error(), ctx.Err())
		}
		b.passed(md.Sequence.Stream, md.NumPending)
		dl := s.storedDeadLetter(msg, md)
		if webhook != "" && webhook != InvalidToken && dl.Webhook != webhook {
			continue // another webhook whose name maps to the same subject token
		}
		if err := s.readOmitted(ctx, dl); err != nil {
			return err
		}
		if err := fn(dl); err != nil {
			return err
		}
	}
}

// deadLetterReader reads webhook's dead letters; nil without an error when
// there is no dead-letter stream.
func (s *Source) deadLetterReader(ctx context.Context, webhook string) (*bounded, error) {
	cc := jetstream.ConsumerConfig{
		Description: "auditrelay dead letters", DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: s.deadLetterFilter(webhook),
	}
	b, err := s.bounded(ctx, DeadLetterStream, cc, 256)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return b, err
}

// storedDeadLetter reads a dead letter's headers. Those auditrelay did not
// write (or a sidecar before Auditrelay-Stream-Seq) read as zero.
func (s *Source) storedDeadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata) *StoredDeadLetter {
	h := msg.Headers()
	dl := &StoredDeadLetter{Seq: md.Sequence.Stream, Time: md.Timestamp, Data: msg.Data()}
	dl.Reason, dl.LastStatus = h.Get(HeaderReason), h.Get(HeaderLastStatus)
	dl.Attempts, _ = strconv.Atoi(h.Get(HeaderAttempts))
	dl.StreamSeq, _ = strconv.ParseUint(h.Get(HeaderStreamSeq), 10, 64)
	dl.StreamTime, _ = time.Parse(time.RFC3339Nano, h.Get(HeaderStreamTime))
	dl.Round = roundOf(h.Get(jetstream.MsgIDHeader))
	if h.Get(HeaderBody) == BodyOmitted {
		dl.BodyOmitted, dl.Data = true, nil
	}
	if msg.Subject() == s.DeadLetterSubject("") {
		return dl
	}
	dl.Webhook = h.Get(HeaderWebhook)
	dl.Entry, _ = Decode(dl.Data, 0)
	return dl
}

// readOmitted reads the entry of a webhook's dead letter stored without its
// body from the audit stream. An entry the stream no longer keeps is left
// empty; any other failure is an error.
func (s *Source) readOmitted(ctx context.Context, dl *StoredDeadLetter) error {
	if !dl.BodyOmitted || dl.Webhook == "" || dl.StreamSeq == 0 {
		return nil
	}
	data, err := s.entryData(ctx, dl.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read entry %d of dead letter %d from stream %s: %w", dl.StreamSeq, dl.Seq, s.cfg.Stream.Name, err)
	}
	dl.Data = data
	dl.Entry, _ = Decode(data, 0)
	return nil
}

// DeadLetterCounts is how many dead letters the stream keeps per subject
// token: each webhook's (config.SubjectToken of its name) and InvalidToken.
func (s *Source) DeadLetterCounts(ctx context.Context) (map[string]uint64, error) {
	st, err := s.js.Stream(ctx, DeadLetterStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return map[string]uint64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", DeadLetterStream, err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.dlPrefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("count dead letters: %w", err)
	}
	counts := map[string]uint64{}
	for subject, n := range info.State.Subjects {
		counts[strings.TrimPrefix(subject, s.dlPrefix+".")] += n
	}
	return counts, nil
}

// Redrive reads one webhook's dead letters to deliver them again
// (`auditrelay deadletter redrive`). It is a sink.Feed: each Message
// carries the entry's audit-stream sequence and time, so its webhook-id is
// the original delivery's, and acknowledging it removes the dead letter:
// the sink acknowledges only once the entry was delivered or stored as a
// dead letter anew. Done is closed once every dead letter handed out is.
type Redrive struct {
	src     *Source
	st      jetstream.Stream
	b       *bounded
	webhook string
	keep    func(*Entry) bool
	begun   time.Time // retry.maxAge counts from here (Message.RetryFrom)

	mu    sync.Mutex
	dls   map[uint64][]uint64 // audit-stream sequence => its dead letters' sequences
	stats RedriveStats
}

// RedriveStats count what a redrive did with the dead letters it read.
type RedriveStats struct {
	// Removed dead letters were delivered or dead-lettered anew.
	Removed int
	// Kept dead letters were left in place: not redriven because keep
	// refused them (the webhook's filter), their entry no longer reads as
	// one (a lower maxEntryBytes), they were stored without their body and
	// the audit stream no longer keeps the entry, or they lack the
	// Auditrelay-Stream-Seq the original webhook-id is made of.
	Kept int
	// Errors are dead letters whose entry was done but that could not be
	// removed: the next redrive delivers them again, with the same webhook-id.
	Errors []error
}

// Redrive starts redriving webhook's dead letters. keep, when set, says
// which entries to redrive; the others stay in place.
func (s *Source) Redrive(ctx context.Context, webhook string, keep func(*Entry) bool, buffer int) (*Redrive, error) {
	cc := jetstream.ConsumerConfig{
		Description: "auditrelay redrive for webhook " + webhook, DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: s.DeadLetterSubject(webhook),
	}
	st, err := s.js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return nil, fmt.Errorf("look up stream %s: %w", DeadLetterStream, err)
	}
	b, err := s.bounded(ctx, DeadLetterStream, cc, buffer)
	if err != nil {
		return nil, err
	}
	return &Redrive{src: s, st: st, b: b, webhook: webhook, keep: keep, begun: time.Now(), dls: map[uint64][]uint64{}}, nil
}

// Next returns the next entry to redrive. Two dead letters of the same
// entry (a crash between storing one and acknowledging the entry) make one
// delivery, and both go once it is done.
func (r *Redrive) Next() (*Message, error) {
	for {
		msg, md, err := r.b.next()
		if err != nil {
			return nil, err
		}
		m := r.message(r.src.storedDeadLetter(msg, md))
		r.b.passed(md.Sequence.Stream, md.NumPending)
		if m != nil {
			return m, nil
		}
	}
}

// message makes the Message of a dead letter, or returns nil for one not
// handed out.
func (r *Redrive) message(dl *StoredDeadLetter) *Message {
	if dl.Webhook != r.webhook {
		return nil // another webhook whose name maps to the same subject token
	}
	if err := r.readOmitted(dl); err != nil {
		r.count(func(s *RedriveStats) { s.Kept++; s.Errors = append(s.Errors, err) })
		return nil
	}
	if dl.Entry.Raw == nil || dl.StreamSeq == 0 || r.keep != nil && !r.keep(&dl.Entry) {
		r.count(func(s *RedriveStats) { s.Kept++ })
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dls[dl.StreamSeq] = append(r.dls[dl.StreamSeq], dl.Seq)
	if !r.b.hold(dl.StreamSeq) {
		return nil
	}
	t := dl.StreamTime
	if t.IsZero() {
		t = dl.Time
	}
	return &Message{Entry: dl.Entry, Seq: dl.StreamSeq, Time: t, RetryFrom: r.begun, Round: dl.Round + 1,
		msg: redriven{r, dl.StreamSeq}}
}

// readOmitted reads the entry of a dead letter stored without its body.
func (r *Redrive) readOmitted(dl *StoredDeadLetter) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return r.src.readOmitted(ctx, dl)
}

func (r *Redrive) count(f func(*RedriveStats)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.stats)
}

// remove deletes the dead letters of the entry at seq, which is done,
// including any of its duplicates read meanwhile, but for the one at keep:
// the entry's new dead letter, which JetStream may have found a copy of
// one read here (same round, within the duplicate window) and not stored
// anew. 0 keeps none.
func (r *Redrive) remove(seq, keep uint64) {
	for {
		r.mu.Lock()
		dls := r.dls[seq]
		if len(dls) == 0 {
			delete(r.dls, seq)
			r.b.release(seq)
			r.mu.Unlock()
			return
		}
		r.dls[seq] = nil
		r.mu.Unlock()
		for _, dlSeq := range dls {
			if dlSeq != keep {
				r.delete(seq, dlSeq)
			}
		}
	}
}

func (r *Redrive) delete(seq, dlSeq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.st.DeleteMsg(ctx, dlSeq)
	r.count(func(s *RedriveStats) {
		if err != nil {
			s.Errors = append(s.Errors, fmt.Errorf("remove dead letter %d (entry %d): %w", dlSeq, seq, err))
		} else {
			s.Removed++
		}
	})
}

// Drain stops reading; what was read is still returned by Next.
func (r *Redrive) Drain() { r.b.stop(true) }

// Stop stops reading.
func (r *Redrive) Stop() { r.b.stop(false) }

// Done is closed when every dead letter handed out is done, or the read
// failed.
func (r *Redrive) Done() <-chan struct{} { return r.b.fin }

// Err is why the read failed, nil when it did not.
func (r *Redrive) Err() error { return r.b.error() }

// Finished is how many entries are done so far.
func (r *Redrive) Finished() int { return r.b.finished() }

// Stats returns what the redrive did so far.
func (r *Redrive) Stats() RedriveStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Errors = append([]error(nil), s.Errors...)
	return s
}

// Close stops reading and deletes the redrive's consumer.
func (r *Redrive) Close() { r.b.close(r.src.js, DeadLetterStream) }

// redriven acknowledges a redriven entry: its dead letters are removed,
// but for a new one it was dead-lettered to.
type redriven struct {
	r   *Redrive
	seq uint64
}

func (d redriven) Ack() error                         { d.r.remove(d.seq, 0); return nil }
func (d redriven) ackDeadLettered(dlSeq uint64) error { d.r.remove(d.seq, dlSeq); return nil }
func (d redriven) InProgress() error                  { return nil }
func (d redriven) NakWithDelay(time.Duration) error   { return nil }
