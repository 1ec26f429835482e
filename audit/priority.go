package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PriorityGroup is the one priority group of auditrelay's pinned consumers.
// Every replica pulls with it; the server delivers to one pinned client.
const PriorityGroup = "auditrelay"

// pinHeader is the header the server sets on every message it delivers to
// the pinned client of a consumer; its value is that client's pin id.
const pinHeader = "Nats-Pin-Id"

// pullExpiry is how long one pull request of a pinned consumer waits. The
// pinned client sends a new one at least this often, which renews its pin.
const pullExpiry = 5 * time.Second

// PinnedTTL is how long the server keeps a replica pinned after its last
// pull request. A pinned replica renews it every pullExpiry, so only a
// replica that is gone (or cut from NATS that long) loses its pin. It is
// AckWait + pullExpiry so that, when the pin moves, every entry the dead
// replica held is already due for redelivery: the new replica gets them
// before any later entry, which keeps per-key order, and all within
// 30 seconds of the crash (SPEC §4).
const PinnedTTL = AckWait + pullExpiry

// renewal is a pull request that renews the pin and can take no entry:
// no entry fits in one byte, and it does not wait.
type renewal struct {
	Batch    int    `json:"batch"`
	MaxBytes int    `json:"max_bytes"`
	NoWait   bool   `json:"no_wait"`
	Group    string `json:"group"`
	ID       string `json:"id"`
}

// keepPin renews this replica's pin every pullExpiry for as long as the
// feed runs. The server renews a client's pin on each pull request it
// sends with its pin id, and nats.go sends those only inside Next: a
// caller that stops asking for entries while its scheduler is full would
// otherwise lose the pin after PinnedTTL, and another replica would
// deliver the same keys. The renewal asks for at most one byte without
// waiting, so it never takes an entry. An answer that the pin is gone
// (423) ends the subscription, dropping what it buffered under the old
// pin, and the next Next reports ErrPinLost.
func (f *Feed) keepPin() {
	t := time.NewTicker(pullExpiry)
	defer t.Stop()
	subject := "$JS.API.CONSUMER.MSG.NEXT." + f.src.cfg.Stream.Name + "." + f.name
	for {
		select {
		case <-f.stopped:
			return
		case <-t.C:
		}
		id := f.pinID()
		if id == "" {
			continue
		}
		body, _ := json.Marshal(renewal{Batch: 1, MaxBytes: 1, NoWait: true, Group: PriorityGroup, ID: id})
		resp, err := f.src.nc.Request(subject, body, 2*time.Second)
		if err != nil || resp.Header.Get("Status") != "423" || f.pinID() != id || f.closing.Load() {
			continue
		}
		f.noteLost()
		f.iter().Stop()
	}
}

// noteLost records that a renewal found the pin gone.
func (f *Feed) noteLost() {
	f.lostMu.Lock()
	defer f.lostMu.Unlock()
	f.lost = true
	select {
	case f.lostCh <- struct{}{}:
	default:
	}
}

// takeLost reports, once, that a renewal found the pin gone.
func (f *Feed) takeLost() bool {
	f.lostMu.Lock()
	defer f.lostMu.Unlock()
	lost := f.lost
	f.lost = false
	select {
	case <-f.lostCh:
	default:
	}
	return lost
}

// PinLost is signalled when a renewal finds that this replica lost its pin,
// for a caller that is not calling Next (its scheduler is full): it hands
// back the entry it has in hand, and the next Next returns ErrPinLost.
func (f *Feed) PinLost() <-chan struct{} { return f.lostCh }

// Role is what this replica does for a consumer.
type Role string

// Roles of a replica.
const (
	// RoleActive: this replica is the consumer's pinned client.
	RoleActive Role = "active"
	// RoleStandby: another replica is pinned, or none yet (the server pins
	// a client when it delivers an entry); this one takes over if it dies.
	RoleStandby Role = "standby"
	// RoleShared: a plain consumer (orderBy = none, or a server older than
	// 2.11); every replica delivers a share.
	RoleShared Role = "shared"
)

// minPinning is the first NATS server version with priority groups.
var minPinning = [2]int{2, 11}

// pinningSupported tells whether server version v ("2.11.3", "v2.12.0-beta")
// has pinned priority groups. An unparsable version is taken as too old.
func pinningSupported(v string) bool {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major > minPinning[0] || major == minPinning[0] && minor >= minPinning[1]
}

// pinIfSupported makes cc pinned when the connected server has priority
// groups; otherwise it leaves cc plain and warns, naming the consumer.
func (s *Source) pinIfSupported(cc *jetstream.ConsumerConfig) {
	v := s.nc.ConnectedServerVersion()
	if !pinningSupported(v) {
		s.log.Warn("NATS server has no pinned priority groups (2.11 or newer): plain consumer; "+
			"one auditrelay is fine, but replicas would not keep order", "consumer", cc.Durable, "serverVersion", v)
		return
	}
	pin(cc)
}

// pin makes cc a pinned-client consumer of PriorityGroup.
func pin(cc *jetstream.ConsumerConfig) {
	cc.PriorityPolicy = jetstream.PriorityPolicyPinned
	cc.PriorityGroups = []string{PriorityGroup}
	cc.PinnedTTL = PinnedTTL
}

// isPinned tells whether a consumer's config, as the server answered it,
// is pinned. A 2.10 server drops the fields it does not know.
func isPinned(cc jetstream.ConsumerConfig) bool {
	return cc.PriorityPolicy == jetstream.PriorityPolicyPinned
}

// policyChangeError explains a durable whose priority policy the server
// refused to change, and what the operator can do.
func policyChangeError(name string, from, to jetstream.PriorityPolicy, err error) error {
	return fmt.Errorf("consumer %s has priority policy %s and the server refused to change it to %s (%w): "+
		"stop every auditrelay replica, note the consumer's ack floor (`nats consumer info`), delete it "+
		"(`nats consumer rm`) and start auditrelay with delivery.start set to resume from there",
		name, policyName(from), policyName(to), err)
}

func policyName(p jetstream.PriorityPolicy) string {
	if p == jetstream.PriorityPolicyNone {
		return "none"
	}
	if b, err := p.MarshalJSON(); err == nil {
		return strings.Trim(string(b), `"`)
	}
	return strconv.Itoa(int(p))
}

// notePin records the pin id the server sent with msg: the server sets it
// only on messages to the pinned client, so it is ours. It reports whether
// the id is new: this replica has just been pinned.
func (f *Feed) notePin(msg jetstream.Msg) bool {
	if !f.pinned {
		return false
	}
	id := msg.Headers().Get(pinHeader)
	if id == "" || id == f.pinID() {
		return false
	}
	f.pin.Store(id)
	return true
}

func (f *Feed) pinID() string {
	id, _ := f.pin.Load().(string)
	return id
}

// Role asks the server whether this replica is the consumer's pinned
// client: the pinned client id it reports is the one on the messages this
// replica received. A replica that lost its pin keeps its old id, which no
// longer matches.
func (f *Feed) Role(ctx context.Context) (Role, error) {
	if !f.pinned {
		return RoleShared, nil
	}
	st, err := f.Status(ctx)
	return st.Role, err
}

// Status is what one look at the consumer tells: how far behind it is and
// whether this replica delivers for it.
type Status struct {
	// Pending is the entries yet to finish: not delivered, plus delivered
	// and not acknowledged.
	Pending uint64
	Role    Role
}

// Status reads the consumer's info once for both its backlog and this
// replica's role.
func (f *Feed) Status(ctx context.Context) (Status, error) {
	info, err := f.consumer().Info(ctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		f.noteGone(err)
	}
	if err != nil {
		return Status{Role: RoleStandby}, fmt.Errorf("consumer %s info: %w", f.name, err)
	}
	f.noteInfo(info)
	return Status{Pending: info.NumPending + uint64(info.NumAckPending), Role: f.roleIn(info)}, nil
}

func (f *Feed) roleIn(info *jetstream.ConsumerInfo) Role {
	if !f.pinned {
		return RoleShared
	}
	mine := f.pinID()
	for _, g := range info.PriorityGroups {
		if g.Group == PriorityGroup && mine != "" && g.PinnedClientID == mine {
			return RoleActive
		}
	}
	return RoleStandby
}

// takeoverWait is how often a replica gathering at a takeover says what it
// still waits for.
const takeoverWait = AckWait / 2

// gatherPoll is how long one read of a takeover waits for a message.
const gatherPoll = 200 * time.Millisecond

// gatherTakeover runs when this replica has just been pinned (first is its
// first message), or when an ordered feed without pinning starts. Entries
// another client got earlier may still be unacknowledged: held by a
// replica that lost its pin and is letting them go, or by a dead one,
// coming back to us as redeliveries in the order their ack deadlines
// expire, not in stream order. So nothing is handed out until every
// unacknowledged entry of the consumer is either acknowledged or handed
// back by its holder, or here; then what is here goes out in stream order.
// A pinned feed waits as long as that takes: a live holder lets go as soon
// as its next pull tells it the pin moved, a dead one's entries expire
// after AckWait. Without pinning, other replicas may hold entries at any
// time, so the wait ends after PinnedTTL, by when a dead process's entries
// have expired. What is gathered is kept in progress meanwhile.
//
// It returns nil without an error when the subscription broke meanwhile
// (the gathered entries are handed back; next pulls again), and ErrPinLost
// or ErrClosed when the pin moved on or the feed was closed.
func (f *Feed) gatherTakeover(first pulled) ([]pulled, error) {
	batch := []pulled{first}
	if f.nothingOutstanding(first) {
		return batch, nil
	}
	start := time.Now()
	say, giveUp := start.Add(takeoverWait), time.Time{}
	if !f.pinned {
		giveUp = start.Add(PinnedTTL)
	}
	for {
		var err error
		if batch, err = f.readAvailable(batch); err != nil || f.closing.Load() {
			handBackAll(batch)
			if err == errBroken {
				f.pin.Store("")
				return nil, nil
			}
			return nil, cmp.Or(err, ErrClosed)
		}
		foreign, ierr := f.heldElsewhere(batch)
		if ierr == nil && foreign == 0 {
			break
		}
		now := time.Now()
		keepAlive(batch, now)
		if !giveUp.IsZero() && now.After(giveUp) {
			f.log.Warn("entries still held by another client after PinnedTTL; going on, per-key order may break for them",
				"consumer", f.name, "held", foreign, "err", ierr)
			break
		}
		if now.After(say) {
			f.log.Warn("waiting for entries another client still holds before delivering", "consumer", f.name,
				"held", foreign, "waited", now.Sub(start).Round(time.Second), "err", ierr)
			say = now.Add(takeoverWait)
		}
	}
	sortPulled(batch)
	batch = slices.CompactFunc(batch, func(a, b pulled) bool { return a.seq == b.seq })
	f.log.Info("this replica now delivers for the consumer", "consumer", f.name, "entries", len(batch),
		"waited", time.Since(start).Round(time.Millisecond))
	return batch, nil
}

// errBroken: the subscription ended while gathering.
var errBroken = errors.New("subscription ended")

// keepAlive reports gathered entries in progress, all at once in stream
// order, once the oldest deadline is a quarter of AckWait old: they are
// not redelivered meanwhile, and their deadlines keep stream order.
func keepAlive(batch []pulled, now time.Time) {
	if !slices.ContainsFunc(batch, func(p pulled) bool { return now.Sub(p.at) >= AckWait/4 }) {
		return
	}
	sortPulled(batch)
	for i := range batch {
		_ = batch[i].msg.InProgress()
		batch[i].at = now
	}
}

func sortPulled(batch []pulled) {
	slices.SortStableFunc(batch, func(a, b pulled) int { return cmp.Compare(a.seq, b.seq) })
}

func handBackAll(batch []pulled) {
	for _, p := range batch {
		_ = p.msg.NakWithDelay(0)
	}
}

// nothingOutstanding reports whether no client can hold an entry older than
// first: first is delivered for the first time and sits right after the
// consumer's ack floor, so every earlier entry is acknowledged and no later
// one was delivered before it (first deliveries go in stream order). This
// is a fresh start or a clean handover, and there is nothing to wait for.
func (f *Feed) nothingOutstanding(first pulled) bool {
	if !first.firstDelivery() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := f.consumer().Info(ctx)
	return err == nil && first.seq == info.AckFloor.Stream+1
}

// readAvailable appends what the subscription has, until none comes for
// gatherPoll. It returns ErrPinLost when the server said the pin moved,
// errBroken when the subscription ended.
func (f *Feed) readAvailable(batch []pulled) ([]pulled, error) {
	for {
		msg, err := f.iter().Next(jetstream.NextMaxWait(gatherPoll))
		switch {
		case err == nil:
			batch = append(batch, pull(msg, time.Now()))
			continue
		case f.closing.Load():
			return batch, ErrClosed
		case errors.Is(err, jetstream.ErrPinIDMismatch) && f.pinned:
			f.pin.Store("")
			return batch, ErrPinLost
		case errors.Is(err, jetstream.ErrMsgIteratorClosed):
			return batch, errBroken
		}
		return batch, nil
	}
}

// heldElsewhere is how many of the consumer's unacknowledged entries
// neither this replica holds (handed out earlier and not let go) nor
// the gathering has.
func (f *Feed) heldElsewhere(batch []pulled) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := f.consumer().Info(ctx)
	if err != nil {
		return -1, err
	}
	return max(info.NumAckPending-f.own.countWith(batch), 0), nil
}

func (f *Feed) popGathered() (pulled, bool) {
	if len(f.gathered) == 0 {
		return pulled{}, false
	}
	p := f.gathered[0]
	f.gathered = f.gathered[1:]
	return p, true
}

// ownSet is the stream sequences a feed handed out that are neither
// acknowledged nor handed back yet, and the last ones acknowledged.
type ownSet struct {
	mu   sync.Mutex
	seqs map[uint64]struct{}
	// done are the sequences acknowledged lately, each in the slot of its
	// sequence modulo doneKept (0 is none: no stream sequence is 0), so
	// about the last doneKept: a copy of one that JetStream redelivered
	// while the first waited in the pull buffer (its deadline ran out
	// there, where nothing heartbeats it) comes after it was delivered,
	// and is passed over.
	done [doneKept]atomic.Uint64
}

// doneKept is how many acknowledged sequences a feed remembers: more than
// a pull buffer and a scheduler hold together.
const doneKept = 4096

// wasDone tells whether seq was acknowledged lately.
func (o *ownSet) wasDone(seq uint64) bool { return o.done[seq%doneKept].Load() == seq }

func (o *ownSet) acked(seq uint64) {
	o.done[seq%doneKept].Store(seq)
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seqs, seq)
}

// track records seq as held and returns msg's handle, which forgets it
// once the entry is acknowledged or handed back.
func (o *ownSet) track(seq uint64, msg jetstream.Msg) acker {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seqs == nil {
		o.seqs = map[uint64]struct{}{}
	}
	o.seqs[seq] = struct{}{}
	return ownMsg{Msg: msg, set: o, seq: seq}
}

func (o *ownSet) forget(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.seqs, seq)
}

// countWith is how many different entries are held or in batch.
func (o *ownSet) countWith(batch []pulled) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(o.seqs)
	seen := map[uint64]bool{}
	for _, p := range batch {
		seq := p.seq
		if _, held := o.seqs[seq]; !held && !seen[seq] {
			seen[seq] = true
			n++
		}
	}
	return n
}

// ownMsg is a handle that keeps the feed's ownSet up to date.
type ownMsg struct {
	jetstream.Msg
	set *ownSet
	seq uint64
}

func (m ownMsg) Ack() error {
	err := m.Msg.Ack()
	m.set.acked(m.seq)
	return err
}

func (m ownMsg) NakWithDelay(d time.Duration) error {
	err := m.Msg.NakWithDelay(d)
	m.set.forget(m.seq)
	return err
}

// Release hands the pin over when this replica stops cleanly (its work
// done or handed back), so that another replica, or this one restarted,
// delivers at once instead of after PinnedTTL. A feed that is not pinned,
// or not the pinned client, has nothing to release.
func (f *Feed) Release() {
	if !f.pinned || f.unpin == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if role, err := f.Role(ctx); err != nil || role != RoleActive {
		return
	}
	if err := f.unpin(ctx); err != nil {
		f.log.Warn("pin not released; another replica takes over after PinnedTTL", "consumer", f.name, "err", err)
	}
}

// unpinner unpins durable's priority group on the audit stream.
func (s *Source) unpinner(durable string) func(context.Context) error {
	return func(ctx context.Context) error {
		st, err := s.js.Stream(ctx, s.cfg.Stream.Name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", s.cfg.Stream.Name, err)
		}
		return st.UnpinConsumer(ctx, durable, PriorityGroup)
	}
}
