package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/config"
)

// Dead-letter headers (SPEC §1, §4).
const (
	HeaderWebhook    = "Auditrelay-Webhook"
	HeaderReason     = "Auditrelay-Reason"
	HeaderAttempts   = "Auditrelay-Attempts"
	HeaderLastStatus = "Auditrelay-Last-Status"
	// HeaderStreamSeq and HeaderStreamTime say where the entry was in the
	// audit stream, for `deadletter list` and redrive.
	HeaderStreamSeq  = "Auditrelay-Stream-Seq"
	HeaderStreamTime = "Auditrelay-Stream-Time"
)

// InvalidToken is the subject token of entries that are not audit entries.
const InvalidToken = config.InvalidToken

// DeadLetter says why an entry could not be delivered to a webhook.
type DeadLetter struct {
	Webhook    string // as written; "" for an invalid entry
	Reason     string
	Attempts   int
	LastStatus string // HTTP status, or tls | proxy | connect | timeout
	StreamSeq  uint64
	StreamTime time.Time
}

// DeadLetterSubject is where the dead letters of webhook name go.
func (s *Source) DeadLetterSubject(name string) string {
	if name == "" {
		return s.dlPrefix + "." + InvalidToken
	}
	return s.dlPrefix + "." + config.SubjectToken(name)
}

// PublishDeadLetter stores data, unchanged, in the dead-letter stream and
// returns once JetStream has acknowledged it: only then may the entry be
// acknowledged in the audit stream.
func (s *Source) PublishDeadLetter(ctx context.Context, dl DeadLetter, data []byte) error {
	msg := nats.NewMsg(s.DeadLetterSubject(dl.Webhook))
	msg.Data = data
	msg.Header.Set(HeaderReason, dl.Reason)
	msg.Header.Set(HeaderStreamSeq, strconv.FormatUint(dl.StreamSeq, 10))
	msg.Header.Set(HeaderStreamTime, dl.StreamTime.UTC().Format(time.RFC3339Nano))
	if dl.Webhook != "" {
		msg.Header.Set(HeaderWebhook, dl.Webhook)
		msg.Header.Set(HeaderAttempts, strconv.Itoa(dl.Attempts))
		msg.Header.Set(HeaderLastStatus, dl.LastStatus)
	}
	if _, err := s.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("store dead letter on %s: %w", msg.Subject, err)
	}
	return nil
}

// Intake is the consumer that sees every entry once, whatever the webhooks:
// it counts them and dead-letters the invalid ones.
type Intake struct {
	src  *Source
	feed *Feed
}

// IntakeCounters are told about every entry the intake reads.
type IntakeCounters interface {
	Received()
	Invalid()
}

// Intake creates or binds the intake consumer.
func (s *Source) Intake(ctx context.Context) (*Intake, error) {
	cc := jetstream.ConsumerConfig{
		Durable: IntakeName(s.cfg.DurablePrefix), Description: "auditrelay intake: counts entries, dead-letters invalid ones",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: AckWait, MaxDeliver: -1, MaxAckPending: 4096,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	// Pinned, so that of several replicas one counts and dead-letters.
	s.pinIfSupported(&cc)
	f, err := s.feed(ctx, cc, 256)
	if err != nil {
		return nil, err
	}
	return &Intake{src: s, feed: f}, nil
}

// Run reads entries until ctx ends. An invalid entry is dead-lettered with
// its reason, logged once and acknowledged; it never stops the intake.
func (in *Intake) Run(ctx context.Context, c IntakeCounters) error {
	stop := context.AfterFunc(ctx, in.feed.Stop)
	defer stop()
	for {
		p, err := in.feed.next()
		if errors.Is(err, ErrPinLost) {
			continue // it holds nothing: each entry is done before the next
		}
		if err != nil {
			return nil
		}
		in.handle(ctx, p.msg, c)
	}
}

// Fault is why the intake cannot pull now, nil while it can.
func (in *Intake) Fault() error { return in.feed.Fault() }

// Release hands the intake's pin over on a clean stop.
func (in *Intake) Release() { in.feed.Release() }

// Role is this replica's role for the intake consumer.
func (in *Intake) Role(ctx context.Context) (Role, error) { return in.feed.Role(ctx) }

func (in *Intake) handle(ctx context.Context, msg jetstream.Msg, c IntakeCounters) {
	c.Received()
	m, err := toMessage(msg, in.feed.max, in.feed.cache)
	var bad *InvalidError
	if !errors.As(err, &bad) {
		_ = msg.Ack()
		return
	}
	c.Invalid()
	dl := DeadLetter{Reason: bad.Reason, StreamSeq: m.Seq, StreamTime: m.Time}
	if err := in.src.PublishDeadLetter(ctx, dl, msg.Data()); err != nil {
		in.src.log.Warn("invalid entry not dead-lettered yet; JetStream will redeliver it", "seq", m.Seq, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	in.src.log.Warn("invalid entry dead-lettered", "seq", m.Seq, "subject", in.src.DeadLetterSubject(""), "reason", bad.Reason)
	_ = msg.Ack()
}
