package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// oneOffSource is a Source on a fresh server, its streams created.
func oneOffSource(t *testing.T) (*audit.Source, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	cfg := config.Default().NATS
	cfg.URL = srv.ClientURL()
	src, err := audit.Connect(cfg, audit.Options{DeadLetterSubject: "auditrelay.deadletter"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for src.Ensure(ctx) != nil {
		if ctx.Err() != nil {
			t.Fatal("streams not created within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return src, js
}

func oneOffEntry(n int) []byte {
	return fmt.Appendf(nil, `{"operation":"Creation","objectType":"case","objectId":"c%d"}`, n)
}

// nextWithin calls next with a time limit.
func nextWithin(t *testing.T, next func() (*audit.Message, error)) (*audit.Message, error) {
	t.Helper()
	type res struct {
		m   *audit.Message
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := next()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("Next blocked for 10s")
		return nil, nil
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not done within 10s", what)
	}
}

// TestReplayEndsAtTheLastEntryWhenItBegan: entries published after the
// replay began are not handed out, and Done waits for every Ack.
func TestReplayEndsAtTheLastEntryWhenItBegan(t *testing.T) {
	src, js := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 4 {
		if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, "thehive.audit.case", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	rp, err := src.Replay(ctx, "siem", audit.ReplayFrom{Seq: 2}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(99)); err != nil {
		t.Fatal(err)
	}
	var got []*audit.Message
	for {
		m, err := nextWithin(t, rp.Next)
		if errors.Is(err, audit.ErrClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0].Seq != 2 || got[2].Seq != 4 || rp.End() != 5 || rp.Invalid() != 1 {
		t.Fatalf("replay handed out %d entries (end %d, invalid %d), want sequences 2..4, end 5, 1 invalid", len(got), rp.End(), rp.Invalid())
	}
	for _, m := range got {
		select {
		case <-rp.Done():
			t.Fatalf("Done before entry %d was acknowledged", m.Seq)
		default:
		}
		_ = m.InProgress()
		_ = m.Ack()
	}
	waitClosed(t, rp.Done(), "replay")
	if rp.Err() != nil || rp.Finished() != 3 {
		t.Errorf("Err %v, Finished %d", rp.Err(), rp.Finished())
	}
}

func TestReplayOfNothingIsDoneAtOnce(t *testing.T) {
	src, js := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rp, err := src.Replay(ctx, "siem", audit.ReplayFrom{Seq: 1}, 16)
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, rp.Done(), "replay of an empty stream")
	rp.Close()
	if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(1)); err != nil {
		t.Fatal(err)
	}
	rp, err = src.Replay(ctx, "siem", audit.ReplayFrom{Time: time.Now().Add(time.Minute)}, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	waitClosed(t, rp.Done(), "replay from the future")
	if _, err := nextWithin(t, rp.Next); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Next = %v, want ErrClosed", err)
	}
}

// TestRedriveDeduplicatesAndKeeps: two dead letters of one entry make one
// delivery and both go once it is acknowledged; an entry keep refuses, an
// invalid entry and another webhook's dead letter stay; a hand-back keeps
// the dead letter.
func TestRedriveDeduplicatesAndKeeps(t *testing.T) {
	src, _ := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now().Truncate(time.Millisecond)
	for _, dl := range []audit.DeadLetter{
		{Webhook: "siem", StreamSeq: 7, StreamTime: now},
		{Webhook: "siem", StreamSeq: 8, StreamTime: now},
		{Webhook: "siem", StreamSeq: 7, StreamTime: now, Round: 1},
		{Webhook: "siem", StreamSeq: 9, StreamTime: now},
		{Webhook: "siem", StreamSeq: 10, StreamTime: now},
		{Webhook: "soar", StreamSeq: 7, StreamTime: now},
		{StreamSeq: 11, Reason: "not JSON"},
	} {
		if _, err := src.PublishDeadLetter(ctx, dl, oneOffEntry(int(dl.StreamSeq))); err != nil {
			t.Fatal(err)
		}
	}
	keep := func(e *audit.Entry) bool { return e.ObjectID != "c9" }
	rd, err := src.Redrive(ctx, "siem", keep, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var got []*audit.Message
	for {
		m, err := nextWithin(t, rd.Next)
		if errors.Is(err, audit.ErrClosed) {
			break
		}
		got = append(got, m)
	}
	if len(got) != 3 || got[0].Seq != 7 || got[1].Seq != 8 || got[2].Seq != 10 || !got[0].Time.Equal(now) {
		t.Fatalf("redrive handed out %v", got)
	}
	_ = got[0].Ack()
	_ = got[1].Ack()
	_ = got[2].NakWithDelay(0)
	if st := rd.Stats(); st.Removed != 3 || st.Kept != 1 || len(st.Errors) != 0 {
		t.Errorf("stats %+v, want 3 removed (two of entry 7, one of 8), 1 kept", st)
	}
	var left []string
	if err := src.ListDeadLetters(ctx, "", func(dl *audit.StoredDeadLetter) error {
		left = append(left, fmt.Sprintf("%s/%d", dl.Webhook, dl.StreamSeq))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(left) != "[siem/9 siem/10 soar/7 /11]" {
		t.Errorf("dead letters left: %v", left)
	}
	counts, err := src.DeadLetterCounts(ctx)
	if err != nil || counts["siem"] != 2 || counts["soar"] != 1 || counts[audit.InvalidToken] != 1 {
		t.Errorf("DeadLetterCounts = %v, %v", counts, err)
	}
}

// TestReplayOutlivesItsConsumer: a replay whose reader stops reading (its
// endpoint down, its scheduler full) for longer than the server keeps an
// unread one-off consumer goes on once it reads again: the consumer the
// server deleted is created again after the last entry read, and every
// entry is handed out once, in order.
func TestReplayOutlivesItsConsumer(t *testing.T) {
	defer audit.SetOneOffInactive(time.Second)()
	src, js := oneOffSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 100
	for i := range n {
		if _, err := js.Publish(ctx, "thehive.audit.case", oneOffEntry(i)); err != nil {
			t.Fatal(err)
		}
	}
	rp, err := src.Replay(ctx, "siem", audit.ReplayFrom{Seq: 1}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	var got []uint64
	read := func(k int) {
		for range k {
			m, err := nextWithin(t, rp.Next)
			if err != nil {
				t.Fatalf("after %d entries: %v (replay error: %v)", len(got), err, rp.Err())
			}
			got = append(got, m.Seq)
			_ = m.Ack()
		}
	}
	read(5)
	waitUntil(t, 30*time.Second, "the server deleting the unread replay consumer", func() bool {
		st, err := js.Stream(ctx, "THEHIVE_AUDIT")
		if err != nil {
			return false
		}
		list := st.ListConsumers(ctx)
		gone := true
		for info := range list.Info() {
			if strings.HasPrefix(info.Config.Description, "auditrelay replay") {
				gone = false
			}
		}
		return gone && list.Err() == nil
	})
	read(n - 5)
	if _, err := nextWithin(t, rp.Next); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("after every entry: %v, want ErrClosed", err)
	}
	waitClosed(t, rp.Done(), "replay")
	if rp.Err() != nil || rp.Finished() != n {
		t.Errorf("Err %v, Finished %d, want nil, %d", rp.Err(), rp.Finished(), n)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("entry %d has sequence %d, want %d (all: %v)", i, seq, i+1, got)
		}
	}
}
