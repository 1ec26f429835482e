package audit

import (
	"bytes"
	"sync"
	"sync/atomic"
)

// Decode cache bounds: cacheSlots entries at most, holding at most
// cacheBytes of raw entry bytes between them. An entry larger than
// cacheMaxEntry is never kept: it is decoded by each consumer instead.
const (
	cacheSlots    = 16384
	cacheBytes    = 4 << 20
	cacheMaxEntry = 64 << 10
)

// decodeCache lets the consumers of one source decode each entry once:
// every webhook's consumer and the intake receive the same stream
// sequence, though not at the same time (the intake runs ahead while a
// backlog drains, and webhooks drift apart by what they hold). A slot is
// found by sequence; a hit needs the same sequence and the same bytes (a
// stream deleted and created again restarts its sequences), so a hit is
// always the entry those bytes decode to.
//
// What it keeps is bounded by bytes (cacheBytes): an entry leaves once
// every webhook consumer of the source has taken it (readers), when a
// later sequence needs its slot, or, oldest first, to make room for a new
// one. The intake only looks entries up: while a backlog drains it runs
// far ahead of the webhooks, and what it kept would crowd out what they
// share.
type decodeCache struct {
	slots   [cacheSlots]atomic.Pointer[decoded]
	mu      sync.Mutex // serialises stores and evictions, not hits
	bytes   int64      // raw bytes held, under mu
	fifo    []uint64   // sequences stored, oldest first, under mu; some already gone
	readers atomic.Int32
}

type decoded struct {
	seq   uint64
	entry Entry
	err   error
	size  int64
	hits  atomic.Int32
}

// addReader and dropReader count the consumers reading through the cache:
// an entry every one of them has taken is not needed any more.
func (c *decodeCache) addReader()  { c.readers.Add(1) }
func (c *decodeCache) dropReader() { c.readers.Add(-1) }

// decode returns raw's entry, from the cache when another consumer decoded
// the same sequence. The returned Entry's Raw is raw itself.
// A reader is counted towards the entry leaving the cache; the intake,
// which is not a reader, passes reader false.
func (c *decodeCache) decode(seq uint64, raw []byte, max int64, reader bool) (Entry, error) {
	slot := &c.slots[seq%cacheSlots]
	if d := slot.Load(); d != nil && d.seq == seq && bytes.Equal(d.entry.Raw, raw) {
		e := d.entry
		e.Raw = raw
		if reader && d.hits.Add(1) >= c.readers.Load() {
			c.evict(slot, d)
		}
		return e, d.err
	}
	e, err := Decode(raw, max)
	if err != nil {
		e.Raw = raw
	}
	if reader && c.readers.Load() > 1 && int64(len(raw)) <= cacheMaxEntry {
		d := &decoded{seq: seq, entry: e, err: err, size: int64(len(raw))}
		d.hits.Store(1)
		c.store(slot, d)
	}
	return e, err
}

// store puts d in its slot unless the slot holds a later sequence (a
// consumer running ahead decoded it, and the others still need it),
// making room by letting the oldest entries go.
func (c *decodeCache) store(slot *atomic.Pointer[decoded], d *decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := slot.Load(); old != nil {
		if old.seq > d.seq {
			return
		}
		c.evictLocked(old)
	}
	for len(c.fifo) > 0 && (c.bytes+d.size > cacheBytes || len(c.fifo) >= cacheSlots) {
		if old := c.slots[c.fifo[0]%cacheSlots].Load(); old != nil && old.seq == c.fifo[0] {
			c.evictLocked(old)
		}
		c.fifo = c.fifo[1:]
	}
	c.bytes += d.size
	c.fifo = append(c.fifo, d.seq)
	slot.Store(d)
}

// evict empties slot if it still holds d.
func (c *decodeCache) evict(slot *atomic.Pointer[decoded], d *decoded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if slot.CompareAndSwap(d, nil) {
		c.bytes -= d.size
	}
}

// evictLocked empties d's slot if it still holds d.
func (c *decodeCache) evictLocked(d *decoded) {
	if c.slots[d.seq%cacheSlots].CompareAndSwap(d, nil) {
		c.bytes -= d.size
	}
}

// held is the raw bytes the cache keeps now (tests).
func (c *decodeCache) held() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
