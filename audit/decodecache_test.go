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
