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
