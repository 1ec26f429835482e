package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

func publishN(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func consumerConfig(t *testing.T, js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "THEHIVE_AUDIT", name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func role(t *testing.T, f *audit.Feed) audit.Role {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := f.Role(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPlainDurableBecomesPinnedKeepingItsPlace: a webhook's durable made
// before replicas (no priority policy) is updated in place to a pinned
// one when the webhook is ordered, and back to plain for orderBy = none;
// its acknowledged entries stay acknowledged each time.
func TestPlainDurableBecomesPinnedKeepingItsPlace(t *testing.T) {
	src, js := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := audit.FeedOptions{MaxAckPending: 16, Start: config.Start{Mode: "all"}}
	plain, err := src.Feed(ctx, "w", opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := role(t, plain); got != audit.RoleShared {
		t.Errorf("plain feed role %q, want %q", got, audit.RoleShared)
	}
	publishN(t, js, 4)
	for range 4 {
		m, err := nextWithin(t, plain.Next)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Ack(); err != nil {
			t.Fatal(err)
		}
	}
	plain.Stop()
	waitAckFloor(t, js, "auditrelay-w", 4)
	publishN(t, js, 6)

	opts.Ordered = true
	pinned, err := src.Feed(ctx, "w", opts)
	if err != nil {
		t.Fatalf("update to pinned: %v", err)
	}
	info := consumerConfig(t, js, "auditrelay-w")
	if info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned || info.Config.PinnedTTL != audit.PinnedTTL {
		t.Fatalf("config after update: policy %v ttl %v, want pinned %v", info.Config.PriorityPolicy, info.Config.PinnedTTL, audit.PinnedTTL)
	}
	if info.AckFloor.Stream != 4 {
		t.Fatalf("ack floor after update %d, want 4", info.AckFloor.Stream)
	}
	m, err := nextWithin(t, pinned.Next)
	if err != nil {
		t.Fatal(err)
	}
	if m.Seq != 5 {
		t.Errorf("pinned feed resumed at %d, want 5", m.Seq)
	}
	_ = m.Ack()
	if got := role(t, pinned); got != audit.RoleActive {
		t.Errorf("pinned feed that received an entry: role %q, want %q", got, audit.RoleActive)
	}
	pinned.Stop()

	opts.Ordered = false
	back, err := src.Feed(ctx, "w", opts)
	if err != nil {
		t.Fatalf("update back to plain: %v", err)
	}
	defer back.Stop()
	if p := consumerConfig(t, js, "auditrelay-w").Config.PriorityPolicy; p != jetstream.PriorityPolicyNone {
		t.Errorf("policy after update back %v, want none", p)
	}
}

func waitAckFloor(t *testing.T, js jetstream.JetStream, name string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for consumerConfig(t, js, name).AckFloor.Stream != want {
		if time.Now().After(deadline) {
			t.Fatalf("ack floor of %s never reached %d", name, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTwoReplicasOnePinned: two sources (two replicas) on one ordered
// webhook's consumer: every entry goes to the pinned one, the other gets
// nothing and says standby.
func TestTwoReplicasOnePinned(t *testing.T) {
	src1, js := oneOffSource(t)
	cfg := config.Default().NATS
	cfg.URL = src1.Conn().ConnectedUrl()
	src2, err := audit.Connect(cfg, audit.Options{DeadLetterSubject: "auditrelay.deadletter"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src2.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	opts := audit.FeedOptions{MaxAckPending: 64, Start: config.Start{Mode: "all"}, Ordered: true}
	feeds := make([]*audit.Feed, 2)
	for i, src := range []*audit.Source{src1, src2} {
		if feeds[i], err = src.Feed(ctx, "w", opts); err != nil {
			t.Fatal(err)
		}
		defer feeds[i].Stop()
	}
	for i, f := range feeds {
		if got := role(t, f); got != audit.RoleStandby {
			t.Errorf("replica %d before any entry: role %q, want standby (nobody pinned yet)", i, got)
		}
	}
	publishN(t, js, 50)
	got := make(chan int, 100)
	for i, f := range feeds {
		go func() {
			for {
				m, err := f.Next()
				if err != nil {
					return
				}
				_ = m.Ack()
				got <- i
			}
		}()
	}
	counts := [2]int{}
	for range 50 {
		select {
		case i := <-got:
			counts[i]++
		case <-time.After(10 * time.Second):
			t.Fatalf("entries received per replica %v, want 50 in all", counts)
		}
	}
	time.Sleep(500 * time.Millisecond) // room for a wrong extra delivery
	if len(got) != 0 || counts[0] != 50 && counts[1] != 50 {
		t.Fatalf("entries per replica %v (+%d late), want all 50 at one", counts, len(got))
	}
	active := 0
	if counts[1] == 50 {
		active = 1
	}
	if r := role(t, feeds[active]); r != audit.RoleActive {
		t.Errorf("replica %d got everything but says %q", active, r)
	}
	if r := role(t, feeds[1-active]); r != audit.RoleStandby {
		t.Errorf("replica %d got nothing but says %q", 1-active, r)
	}
}

// TestPinnedTTLCoversAckWait reads what the server keeps for an ordered
// webhook's consumer: when its pin moves to another replica, what the old
// holder had unacknowledged is already due for redelivery (PinnedTTL longer
// than AckWait, plus a pull's expiry, so the holder had the time to renew),
// and the takeover still fits SPEC §5's 30 seconds.
func TestPinnedTTLCoversAckWait(t *testing.T) {
	src, js := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f, err := src.Feed(ctx, "w", audit.FeedOptions{MaxAckPending: 16, Start: config.Start{Mode: "all"}, Ordered: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	cc := consumerConfig(t, js, "auditrelay-w").Config
	if cc.PriorityPolicy != jetstream.PriorityPolicyPinned || len(cc.PriorityGroups) != 1 {
		t.Fatalf("consumer is not pinned: policy %v, groups %v", cc.PriorityPolicy, cc.PriorityGroups)
	}
	if cc.PinnedTTL <= cc.AckWait {
		t.Errorf("server keeps PinnedTTL %v, not beyond AckWait %v: a new pin could deliver before the old holder's entries are due", cc.PinnedTTL, cc.AckWait)
	}
	if cc.PinnedTTL >= 30*time.Second {
		t.Errorf("server keeps PinnedTTL %v: no time left to deliver within 30s of a takeover", cc.PinnedTTL)
	}
}
