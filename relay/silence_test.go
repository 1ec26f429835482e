package relay

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestDeletedConsumerCreatedAgain: a webhook's durable consumer deleted by
// hand at run time is created again and resumes after the last ack floor
// the sidecar read (every 2 s): every entry published after the deletion
// arrives in order, nothing is skipped, at worst acknowledged entries come
// again, and the webhook is ready again.
func TestDeletedConsumerCreatedAgain(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	s := startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem" }`, rc.URL))))
	var before, after []string
	for i := range 5 {
		before = append(before, entry("Creation", "case", fmt.Sprintf("b%d", i), "r", i))
		after = append(after, entry("Update", "case", fmt.Sprintf("a%d", i), "r", 10+i))
	}
	publish(t, js, "thehive.audit.case", before...)
	waitFor(t, 10*time.Second, "the first five entries", func() bool { return len(rc.delivered()) == 5 })
	waitFor(t, 10*time.Second, "the consumer's ack floor", func() bool { return ackFloor(t, js, "auditrelay-siem") == 5 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := js.DeleteConsumer(ctx, "THEHIVE_AUDIT", "auditrelay-siem"); err != nil {
		t.Fatal(err)
	}
	publish(t, js, "thehive.audit.case", after...)
	waitFor(t, 20*time.Second, "the entries published after the deletion", func() bool {
		got := rc.delivered()
		return len(got) >= 10 && string(got[len(got)-1]) == after[4]
	})
	got := rc.delivered()
	if joinLines(got[:5]) != strings.Join(before, "\n") {
		t.Fatalf("first deliveries:\n%s", joinLines(got[:5]))
	}
	// After the deletion: a repeat of the acknowledged ones (from the
	// floor last read, so in stream order) at most, then the new ones.
	rest := joinLines(got[5:])
	if !strings.HasSuffix(rest, strings.Join(after, "\n")) {
		t.Fatalf("deliveries after the deletion (loss or order):\n%s", rest)
	}
	if head := strings.TrimSuffix(strings.TrimSuffix(rest, strings.Join(after, "\n")), "\n"); head != "" &&
		!strings.HasSuffix(strings.Join(before, "\n"), head) {
		t.Fatalf("entries before the deletion came again out of order:\n%s", head)
	}
	if _, err := js.Consumer(ctx, "THEHIVE_AUDIT", "auditrelay-siem"); err != nil {
		t.Errorf("consumer not created again: %v", err)
	}
	waitFor(t, 10*time.Second, "ready again", func() bool { return len(s.NotReady()) == 0 })
}

// TestVanishedStreamNotReadyNamingWebhook: while the audit stream is gone
// (deleted, about to be restored from a backup) the webhooks cannot pull:
// /readyz says so, naming each one; once it is back with its sequences, the
// consumers are created again and delivery resumes after the last entry
// acknowledged.
func TestVanishedStreamNotReadyNamingWebhook(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	s := startRelay(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem" }`, rc.URL))))
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "c1", "c1", 1))
	waitFor(t, 10*time.Second, "first entry", func() bool { return len(rc.delivered()) == 1 })
	waitFor(t, 10*time.Second, "the consumer's ack floor", func() bool { return ackFloor(t, js, "auditrelay-siem") == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if err := js.DeleteStream(ctx, "THEHIVE_AUDIT"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "/readyz to name the webhook", func() bool {
		return strings.Contains(strings.Join(s.NotReady(), "\n"), `webhook "siem": cannot pull`)
	})
	// Restored: the same stream, its next sequence where it was.
	cfg.FirstSeq = 2
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "ready again", func() bool { return len(s.NotReady()) == 0 })
	publish(t, js, "thehive.audit.case", entry("Update", "case", "c1", "c1", 2))
	waitFor(t, 20*time.Second, "the entry published after the restore", func() bool { return len(rc.delivered()) == 2 })
	if got := string(rc.delivered()[1]); got != entry("Update", "case", "c1", "c1", 2) {
		t.Fatalf("second delivery = %s", got)
	}
}

func ackFloor(t *testing.T, js jetstream.JetStream, consumer string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "THEHIVE_AUDIT", consumer)
	if err != nil {
		return 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0
	}
	return info.AckFloor.Stream
}
