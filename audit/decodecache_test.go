package audit

import (
	"fmt"
	"strings"
	"testing"
)

func cacheEntry(seq uint64, pad int) []byte {
	return []byte(fmt.Sprintf(`{"operation":"Update","objectType":"case","objectId":"c%d","rootId":"r%d","details":{"d":%q}}`,
		seq, seq, strings.Repeat("x", pad)))
}

// Four webhook readers share one decode; the last to take an entry lets
// it go, and the intake (not a reader) looks entries up without keeping any.
func TestDecodeCacheSharesAndLetsGo(t *testing.T) {
	var c decodeCache
	for range 4 {
		c.addReader()
	}
	raw := cacheEntry(7, 100)
	e, err := c.decode(7, raw, 0, false)
	if err != nil || e.ObjectID != "c7" {
		t.Fatalf("intake decode = %+v, %v", e, err)
	}
	if c.held() != 0 {
		t.Fatalf("the intake kept %d bytes; it only looks up", c.held())
	}
	for i := range 4 {
		copyRaw := append([]byte(nil), raw...)
		e, err := c.decode(7, copyRaw, 0, true)
		if err != nil || e.ObjectID != "c7" || &e.Raw[0] != &copyRaw[0] {
			t.Fatalf("reader %d: %+v, %v (Raw must be the reader's own bytes)", i, e, err)
		}
		if want := int64(len(raw)); i < 3 && c.held() != want {
			t.Fatalf("after reader %d the cache holds %d bytes, want %d", i, c.held(), want)
		}
	}
	if c.held() != 0 {
		t.Fatalf("every reader took the entry, yet the cache holds %d bytes", c.held())
	}
	// A stream created again reuses sequences: other bytes are no hit.
	c.decode(8, cacheEntry(8, 10), 0, true)
	other := cacheEntry(9, 10)
	if e, _ := c.decode(8, other, 0, true); e.ObjectID != "c9" {
		t.Fatalf("different bytes at a cached sequence decoded as %q", e.ObjectID)
	}
}

// What the cache keeps stays under cacheBytes however many entries pass
// that some reader never takes, and an entry larger than cacheMaxEntry is
// never kept.
func TestDecodeCacheBoundedByBytes(t *testing.T) {
	var c decodeCache
	c.addReader()
	c.addReader() // the second never reads
	for seq := uint64(1); seq <= 3*cacheSlots; seq++ {
		if _, err := c.decode(seq, cacheEntry(seq, 1500), 0, true); err != nil {
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
	if _, err := big.decode(1, cacheEntry(1, cacheMaxEntry), 0, true); err != nil {
		t.Fatal(err)
	}
	if big.held() != 0 {
		t.Fatalf("an entry over %d bytes was kept (%d bytes held)", cacheMaxEntry, big.held())
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
