package audit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func cacheEntry(seq uint64, pad int) []byte {
	return []byte(fmt.Sprintf(`{"operation":"Update","objectType":"case","objectId":"c%d","rootId":"r%d","details":{"d":%q}}`,
		seq, seq, strings.Repeat("x", pad)))
}

// Four webhook readers share one decode; the last to take an entry lets
// it go; the intake running free looks entries up without keeping any.
// What is kept is the decoded fields, never a consumer's bytes.
func TestDecodeCacheSharesAndLetsGo(t *testing.T) {
	var c decodeCache
	for range 4 {
		c.addReader()
	}
	raw := cacheEntry(7, 100)
	e, err := c.decode(7, raw, 0, useLook)
	if err != nil || e.ObjectID != "c7" {
		t.Fatalf("intake decode = %+v, %v", e, err)
	}
	if c.held() != 0 {
		t.Fatalf("the intake running free kept %d bytes; it only looks up", c.held())
	}
	for i := range 4 {
		copyRaw := append([]byte(nil), raw...)
		e, err := c.decode(7, copyRaw, 0, useShare)
		if err != nil || e.ObjectID != "c7" || &e.Raw[0] != &copyRaw[0] {
			t.Fatalf("reader %d: %+v, %v (Raw must be the reader's own bytes)", i, e, err)
		}
		if got := string(e.Fact("d")); got != `"`+strings.Repeat("x", 100)+`"` {
			t.Fatalf("reader %d: details.d = %s, read from its own bytes", i, got)
		}
		if want := keptSize(&e); i < 3 && c.held() != want {
			t.Fatalf("after reader %d the cache holds %d bytes, want %d", i, c.held(), want)
		}
		if d := c.slots[7%cacheSlots].Load(); i < 3 && (d == nil || d.entry.Raw != nil) {
			t.Fatalf("after reader %d the kept entry is %+v: it must hold no bytes", i, d)
		}
	}
	if c.held() != 0 {
		t.Fatalf("every reader took the entry, yet the cache holds %d bytes", c.held())
	}
	if n := c.decodes.Load(); n != 2 {
		t.Fatalf("%d decodes, want 2: the intake's and one for the four readers", n)
	}
	// A stream created again reuses sequences: other bytes of the same
	// length are no hit.
	c.decode(8, cacheEntry(8, 10), 0, useShare)
	other := cacheEntry(9, 10)
	if e, _ := c.decode(8, other, 0, useShare); e.ObjectID != "c9" {
		t.Fatalf("different bytes at a cached sequence decoded as %q", e.ObjectID)
	}
}

// The paced intake decodes first and keeps the entry for the webhooks:
// one decode for all five consumers.
func TestDecodeCachePacedIntakeDecodesForAll(t *testing.T) {
	var c decodeCache
	for range 4 {
		c.addReader()
	}
	for seq := uint64(1); seq <= 100; seq++ {
		raw := cacheEntry(seq, 1500)
		if _, err := c.decode(seq, raw, 0, useKeep); err != nil {
			t.Fatal(err)
		}
		for range 4 {
			e, err := c.decode(seq, append([]byte(nil), raw...), 0, useShare)
			if err != nil || e.ObjectID != fmt.Sprintf("c%d", seq) {
				t.Fatalf("seq %d: %+v, %v", seq, e, err)
			}
		}
	}
	if n := c.decodes.Load(); n != 100 {
		t.Fatalf("%d decodes for 100 entries read by the intake and 4 webhooks, want 100", n)
	}
	if c.held() != 0 {
		t.Fatalf("every webhook took every entry, yet the cache holds %d bytes", c.held())
	}
}

// What the cache keeps stays under cacheBytes however many entries pass
// that some reader never takes, and a large entry costs only its fields.
func TestDecodeCacheBoundedByBytes(t *testing.T) {
	var c decodeCache
	c.addReader()
	c.addReader() // the second never reads
	for seq := uint64(1); seq <= 3*cacheSlots; seq++ {
		if _, err := c.decode(seq, cacheEntry(seq, 1500), 0, useShare); err != nil {
			t.Fatal(err)
		}
		if c.held() > cacheBytes {
			t.Fatalf("at %d the cache holds %d bytes, over %d", seq, c.held(), cacheBytes)
		}
	}
	if c.held() < cacheBytes/2 {
		t.Fatalf("the cache holds only %d bytes: it should keep recent entries up to %d", c.held(), cacheBytes)
	}
	var big decodeCache
	big.addReader()
	big.addReader()
	if _, err := big.decode(1, cacheEntry(1, 1<<20), 0, useShare); err != nil {
		t.Fatal(err)
	}
	if got := big.held(); got <= 0 || got > decodedSize+64 {
		t.Fatalf("an entry of 1 MiB costs %d bytes in the cache: only its decoded fields should count", got)
	}
}

// pace holds the intake at most paceAhead entries ahead of the webhook
// furthest on while that one keeps up, and lets it run free otherwise,
// waiting once, not for every entry, while the webhooks stay behind.
func TestDecodeCachePace(t *testing.T) {
	ctx := context.Background()
	var none decodeCache
	if none.pace(ctx, 1_000_000) {
		t.Fatal("with no webhook reading here, the intake must run free")
	}

	var c decodeCache
	var sleeps int
	c.sleepHook = func(d time.Duration) { sleeps++; time.Sleep(d) }
	c.addReader()
	c.moveLead(100)
	if !c.pace(ctx, 100+paceAhead) || sleeps != 0 {
		t.Fatalf("an intake paceAhead entries ahead should go on at once, keeping what it decodes (%d sleeps)", sleeps)
	}
	// The lead does not move: the intake waits paceStall, then runs free...
	if c.pace(ctx, 100+paceAhead+1) {
		t.Fatal("an intake ahead of a webhook that does not move must run free")
	}
	if sleeps == 0 {
		t.Fatal("the intake gave up without waiting for the webhook")
	}
	// ...and does not wait again for the next entries.
	sleeps = 0
	for seq := uint64(100 + paceAhead + 2); seq < 100+paceAhead+100; seq++ {
		if c.pace(ctx, seq) {
			t.Fatalf("seq %d kept while the webhooks stay behind", seq)
		}
	}
	if sleeps != 0 {
		t.Fatalf("the intake waited %d times again behind webhooks that did not come", sleeps)
	}
	// A webhook that moves, but slowly (one entry a poll, a poll taking
	// 2 ms or more), does not hold the intake either.
	c.moveLead(3000)
	c.sleepHook = func(time.Duration) {
		time.Sleep(2 * time.Millisecond)
		c.moveLead(c.lead.Load() + 1)
	}
	if c.pace(ctx, 3000+2*paceAhead) {
		t.Fatal("an intake ahead of a webhook slower than paceMoves a paceStall must run free")
	}
	// The webhooks catch up and move on (100 entries a poll): the intake
	// is paced again, and waits for them.
	c.moveLead(5000)
	c.sleepHook = func(time.Duration) { c.moveLead(c.lead.Load() + 100) }
	target := uint64(5500 + paceAhead)
	if !c.pace(ctx, target) {
		t.Fatal("an intake ahead of webhooks that move must wait for them and keep what it decodes")
	}
	if lead := c.lead.Load(); target > lead+paceAhead {
		t.Fatalf("pace let seq %d go with the lead at %d, more than %d ahead", target, lead, paceAhead)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if c.pace(canceled, c.lead.Load()+paceAhead+1) {
		t.Fatal("pace after the intake's context ended must not wait")
	}
}

// ackMeta reads the reply subjects of both forms as nats.go's Metadata does.
func TestAckMetaReadsBothForms(t *testing.T) {
	for _, tc := range []struct {
		reply          string
		seq, delivered uint64
		ts             int64
		ok             bool
	}{
		{"$JS.ACK.AUDIT.w1.3.1234.17.1700000000000000001.9", 1234, 3, 1700000000000000001, true},
		{"$JS.ACK._.HASH.AUDIT.w1.1.55.2.1700000000000000002.0.rnd", 55, 1, 1700000000000000002, true},
		{"$JS.ACK.dom.HASH.AUDIT.w1.1.56.2.1700000000000000003.0", 56, 1, 1700000000000000003, true},
		{"$JS.ACK.AUDIT.w1.x.1234.17.1.9", 0, 0, 0, false},
		{"$JS.ACK.AUDIT.w1.1.2.3.4", 0, 0, 0, false},
		{"_INBOX.abc", 0, 0, 0, false},
	} {
		seq, delivered, ts, ok := ackMeta(tc.reply)
		if ok != tc.ok || (ok && (seq != tc.seq || delivered != tc.delivered || ts.UnixNano() != tc.ts)) {
			t.Errorf("ackMeta(%q) = %d, %d, %d, %v; want %d, %d, %d, %v", tc.reply, seq, delivered, ts.UnixNano(), ok, tc.seq, tc.delivered, tc.ts, tc.ok)
		}
	}
}
