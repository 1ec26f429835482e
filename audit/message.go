package audit

import (
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Message is one entry as a webhook's consumer received it: the decoded
// entry, where it sits in the stream, and the handle to acknowledge it.
// Tests may build a Message without a handle; its acknowledgements then do
// nothing.
type Message struct {
	Entry Entry
	// Seq is the entry's stream sequence: its identity in the stream.
	Seq uint64
	// Time is when the stream stored the entry (publish time).
	Time time.Time
	// RetryFrom, when set, is where retry.maxAge counts from instead of
	// Time: the start of a redrive or replay, so that an old entry gets
	// its attempts there too. See MaxAgeFrom.
	RetryFrom time.Time
	// Round is the DeadLetter.Round of this delivery's dead letter, should
	// it fail: 0 from the webhook's consumer, more from a redrive or replay.
	Round uint64
	// Received is when JetStream's ack deadline for this delivery last
	// started: when this replica received it, or last reported it in
	// progress before handing it out. Zero when unknown (tests).
	Received time.Time

	msg acker
}

// acker is what a Message acknowledges through: a jetstream.Msg, or a
// wrapper that does more (replay counts what is done; redrive removes the
// dead letter once its entry is delivered or dead-lettered anew).
type acker interface {
	Ack() error
	InProgress() error
	NakWithDelay(delay time.Duration) error
}

var _ acker = jetstream.Msg(nil)

// Ack acknowledges the entry for this consumer: it is done.
func (m *Message) Ack() error {
	if m.msg == nil {
		return nil
	}
	return m.msg.Ack()
}

// MaxAgeFrom is where the entry's retry.maxAge counts from: when the stream
// stored it, or when the redrive or replay delivering it again began.
func (m *Message) MaxAgeFrom() time.Time {
	if !m.RetryFrom.IsZero() {
		return m.RetryFrom
	}
	return m.Time
}

// deadLetterAcker is an acker that keeps the entry's new dead letter: a
// redrive removes the entry's earlier ones.
type deadLetterAcker interface {
	ackDeadLettered(dlSeq uint64) error
}

// AckDeadLettered acknowledges the entry once it is stored as a dead letter
// at dlSeq of the dead-letter stream. A redriven entry's earlier dead
// letters are removed, never the one at dlSeq.
func (m *Message) AckDeadLettered(dlSeq uint64) error {
	if d, ok := m.msg.(deadLetterAcker); ok {
		return d.ackDeadLettered(dlSeq)
	}
	return m.Ack()
}

// InProgress resets the redelivery timer while a retry chain outlives AckWait.
func (m *Message) InProgress() error {
	if m.msg == nil {
		return nil
	}
	return m.msg.InProgress()
}

// NakWithDelay hands the entry back to JetStream, to be redelivered after
// delay (on shutdown, for work not finished).
func (m *Message) NakWithDelay(delay time.Duration) error {
	if m.msg == nil {
		return nil
	}
	return m.msg.NakWithDelay(delay)
}
