package audit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	// HeaderBody is BodyOmitted on a dead letter stored without its body:
	// with the headers, the entry would exceed the server's max_payload
	// (the entry stays in the audit stream at Auditrelay-Stream-Seq), or
	// the ingest refused it as larger than its maxEntryBytes.
	HeaderBody = "Auditrelay-Body"
)

// BodyOmitted is the value of HeaderBody on a dead letter without its body.
const BodyOmitted = "omitted"

// InvalidToken is the subject token of entries that are not audit entries.
const InvalidToken = config.InvalidToken

// DeadLetter says why an entry could not be delivered to a webhook.
type DeadLetter struct {
	Webhook    string // as written; "" for an invalid entry
	Reason     string
	Attempts   int
	LastStatus string // HTTP status, or tls | proxy | connect | timeout
	// StreamSeq and StreamTime are where the entry is in the audit stream;
	// 0 for one the ingest refused, which never got there.
	StreamSeq  uint64
	StreamTime time.Time
	// Round tells this dead-lettering of the entry for the webhook from
	// the others: 0 from the webhook's consumer, one more than the dead
	// letter's own from a redrive, the replay's start (Unix nanoseconds)
	// from a replay. With the webhook and StreamSeq it makes the dead
	// letter's Nats-Msg-Id, so the copies of one store (retries buffered
	// while NATS reconnects) are stored once, and a later dead-lettering
	// is never taken for a copy of an earlier one.
	Round uint64
	// OmitBody stores the dead letter without its body, as one too large.
	OmitBody bool
}

// DeadLetterDuplicates is the dead-letter stream's duplicate window: copies
// of a dead letter arriving this close together are stored once. Retries
// buffered while NATS is unreachable arrive together when it is back.
const DeadLetterDuplicates = 2 * time.Minute

// msgID is the dead letter's Nats-Msg-Id: <webhook>:<stream seq>:<round>,
// the webhook being InvalidToken for an invalid entry.
func (dl DeadLetter) msgID() string {
	w := dl.Webhook
	if w == "" {
		w = InvalidToken
	}
	return w + ":" + strconv.FormatUint(dl.StreamSeq, 10) + ":" + strconv.FormatUint(dl.Round, 10)
}

// roundOf is the round of a stored dead letter's Nats-Msg-Id; 0 for one
// without (stored by a sidecar that set none).
func roundOf(msgID string) uint64 {
	i := strings.LastIndexByte(msgID, ':')
	if i < 0 {
		return 0
	}
	n, _ := strconv.ParseUint(msgID[i+1:], 10, 64)
	return n
}

// DeadLetterSubject is where the dead letters of webhook name go.
func (s *Source) DeadLetterSubject(name string) string {
	if name == "" {
		return s.dlPrefix + "." + InvalidToken
	}
	return s.dlPrefix + "." + config.SubjectToken(name)
}

// PublishDeadLetter stores data, unchanged, in the dead-letter stream and
// returns once JetStream has acknowledged it, with the dead letter's
// sequence there: only then may the entry be acknowledged in the audit
// stream. A copy of a dead letter stored within DeadLetterDuplicates (same
// webhook, entry and round) is not stored again; its sequence is that of
// the one stored. A dead letter that would not fit the server's
// max_payload is stored without its body (HeaderBody): retrying could
// never store it, and the entry is still in the audit stream.
func (s *Source) PublishDeadLetter(ctx context.Context, dl DeadLetter, data []byte) (uint64, error) {
	msg := s.deadLetterMsg(dl, data)
	if s.tooLarge(msg) {
		omitBody(msg)
	}
	ack, err := s.js.PublishMsg(ctx, msg)
	if errors.Is(err, nats.ErrMaxPayload) && msg.Data != nil {
		// The server's limit changed since tooLarge looked at it.
		omitBody(msg)
		ack, err = s.js.PublishMsg(ctx, msg)
	}
	if err != nil {
		return 0, fmt.Errorf("store dead letter on %s: %w", msg.Subject, err)
	}
	return ack.Sequence, nil
}

func (s *Source) deadLetterMsg(dl DeadLetter, data []byte) *nats.Msg {
	msg := nats.NewMsg(s.DeadLetterSubject(dl.Webhook))
	msg.Data = data
	if dl.StreamSeq != 0 {
		// Only an entry of the audit stream has an identity to store once
		// by; what the ingest refused never got a sequence.
		msg.Header.Set(jetstream.MsgIDHeader, dl.msgID())
	}
	msg.Header.Set(HeaderReason, dl.Reason)
	if dl.StreamSeq != 0 {
		msg.Header.Set(HeaderStreamSeq, strconv.FormatUint(dl.StreamSeq, 10))
		msg.Header.Set(HeaderStreamTime, dl.StreamTime.UTC().Format(time.RFC3339Nano))
	}
	if dl.OmitBody {
		omitBody(msg)
	}
	if dl.Webhook != "" {
		msg.Header.Set(HeaderWebhook, dl.Webhook)
		msg.Header.Set(HeaderAttempts, strconv.Itoa(dl.Attempts))
		msg.Header.Set(HeaderLastStatus, dl.LastStatus)
	}
	return msg
}

// tooLarge says whether msg's headers and body exceed the max_payload of
// the server the connection is on (unknown before a first connection:
// then the publish itself says so, see PublishDeadLetter).
func (s *Source) tooLarge(msg *nats.Msg) bool {
	limit := s.nc.MaxPayload()
	return limit > 0 && int64(msg.Size()-len(msg.Subject)) > limit
}

func omitBody(msg *nats.Msg) {
	msg.Data = nil
	msg.Header.Set(HeaderBody, BodyOmitted)
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
	f, err := s.feed(ctx, cc)
	if err != nil {
		return nil, err
	}
	return &Intake{src: s, feed: f}, nil
}

// Run reads entries until ctx ends. An invalid entry is dead-lettered with
// its reason, logged once and acknowledged; it never stops the intake.
func (in *Intake) Run(ctx context.Context, c IntakeCounters) error {
	// Drained rather than stopped: what was pulled is counted and acked
	// here, instead of being redelivered to the next intake uncounted.
	stop := context.AfterFunc(ctx, in.feed.Drain)
	defer stop()
	for {
		p, err := in.feed.next()
		if errors.Is(err, ErrPinLost) {
			continue // it holds nothing: each entry is done before the next
		}
		if err != nil {
			return nil
		}
		in.handle(ctx, p, c)
	}
}

// Fault is why the intake cannot pull now, nil while it can.
func (in *Intake) Fault() error { return in.feed.Fault() }

// Release hands the intake's pin over on a clean stop.
func (in *Intake) Release() { in.feed.Release() }

// Role is this replica's role for the intake consumer.
func (in *Intake) Role(ctx context.Context) (Role, error) { return in.feed.Role(ctx) }

// handle counts an entry on its first delivery only: a redelivery (an
// invalid entry whose dead letter could not be stored yet, an intake that
// stopped before acknowledging) was counted when it was first handed out,
// by this process or by the one before it. See pulled.firstDelivery.
func (in *Intake) handle(ctx context.Context, p pulled, c IntakeCounters) {
	msg := p.msg
	first := p.firstDelivery()
	if first {
		c.Received()
	}
	use := useLook
	if p.err == nil && in.feed.cache.pace(ctx, p.seq) {
		use = useKeep
	}
	m, err := toMessage(p, in.feed.max, in.feed.cache, use)
	var bad *InvalidError
	if !errors.As(err, &bad) {
		_ = msg.Ack()
		return
	}
	if first {
		c.Invalid()
	}
	dl := DeadLetter{Reason: bad.Reason, StreamSeq: m.Seq, StreamTime: m.Time}
	if _, err := in.src.PublishDeadLetter(ctx, dl, msg.Data()); err != nil {
		in.src.log.Warn("invalid entry not dead-lettered yet; JetStream will redeliver it", "seq", m.Seq, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	in.src.log.Warn("invalid entry dead-lettered", "seq", m.Seq, "subject", in.src.DeadLetterSubject(""), "reason", bad.Reason)
	_ = msg.Ack()
}

// firstDelivery says whether JetStream hands the message out for the
// first time. Counting only then counts each stream sequence at most once,
// across redeliveries, restarts and replicas. An entry whose first
// delivery was never handled (the process was killed with it pulled but
// unread) is not counted at all: a crash can under-count, never over-count.
func (p pulled) firstDelivery() bool { return p.err == nil && p.delivered == 1 }
