package audit

import (
	"context"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Decode cache bounds: cacheSlots entries at most, and cacheBytes of
// decoded fields between them. The cache keeps no entry's bytes, only what
// Decode read from them, so its bound does not grow with the entries.
const (
	cacheSlots = 16384
	cacheBytes = 4 << 20
	// decodedSize is what a kept entry costs beside its strings.
	decodedSize = 256
)

// decodeCache lets the consumers of one source decode each entry once:
// every webhook's consumer and the intake receive the same stream
// sequence, though not at the same time (webhooks drift apart by what they
// hold). A slot is found by sequence; a hit needs the same sequence and
// the same bytes, compared by length and a 64-bit hash with a seed of this
// process (a stream deleted and created again restarts its sequences), so
// a hit is the entry those bytes decode to.
//
// What it keeps is bounded by bytes (cacheBytes): an entry leaves once
// every webhook consumer of the source has taken it (readers), when a
// later sequence needs its slot, or, oldest first, to make room for a new
// one.
//
// The intake decodes first and keeps what it decodes for the webhooks, as
// long as it is paced (see pace): a little ahead of the webhook furthest
// on. Running free, far ahead of them, it would only crowd out what they
// share, so then it looks entries up and keeps none.
type decodeCache struct {
	slots   [cacheSlots]atomic.Pointer[decoded]
	mu      sync.Mutex // serialises stores and evictions, not hits
	bytes   int64      // what the kept entries cost, under mu
	fifo    []uint64   // sequences stored, oldest first, under mu; some already gone
	readers atomic.Int32
	// lead is the highest sequence a webhook's consumer took.
	lead atomic.Uint64
	// decodes counts the entries decoded rather than found here (tests).
	decodes atomic.Int64
	// free is where the intake last gave up waiting for the webhooks (see
	// pace); sleepHook, when set, replaces its sleeps (tests).
	free      atomic.Uint64
	sleepHook func(time.Duration)
}

type decoded struct {
	seq   uint64
	n     int    // the length of the bytes decoded
	sum   uint64 // their hash
	entry Entry  // with no Raw
	err   error
	size  int64
	hits  atomic.Int32
}

// cacheSeed seeds the hashes that tell one entry's bytes from another's.
var cacheSeed = maphash.MakeSeed()

// cacheUse is how a consumer uses the cache.
type cacheUse int

const (
	// useLook looks entries up and keeps none: the intake running free,
	// and consumers that are not a webhook's.
	useLook cacheUse = iota
	// useKeep keeps what it decodes, without taking it: the paced intake.
	useKeep
	// useShare is a webhook's consumer: it keeps what it decodes, and is
	// counted towards an entry leaving once every webhook took it.
	useShare
)

// addReader and dropReader count the consumers reading through the cache:
// an entry every one of them has taken is not needed any more.
func (c *decodeCache) addReader()  { c.readers.Add(1) }
func (c *decodeCache) dropReader() { c.readers.Add(-1) }

// decode returns raw's entry, from the cache when another consumer decoded
// the same sequence. The returned Entry's Raw is raw itself.
func (c *decodeCache) decode(seq uint64, raw []byte, max int64, use cacheUse) (Entry, error) {
	if use == useShare {
		c.moveLead(seq)
	}
	slot := &c.slots[seq%cacheSlots]
	var sum uint64
	if d := slot.Load(); d != nil && d.seq == seq && d.n == len(raw) {
		if sum = maphash.Bytes(cacheSeed, raw); sum == d.sum {
			e := d.entry
			e.Raw = raw
			if use == useShare && d.hits.Add(1) >= c.readers.Load() {
				c.evict(slot, d)
			}
			return e, d.err
		}
	}
	c.decodes.Add(1)
	e, err := Decode(raw, max)
	if err != nil {
		e.Raw = raw
	}
	if use == useLook || c.readers.Load() == 0 || (use == useShare && c.readers.Load() == 1) {
		return e, err
	}
	if sum == 0 {
		sum = maphash.Bytes(cacheSeed, raw)
	}
	d := &decoded{seq: seq, n: len(raw), sum: sum, entry: e, err: err, size: keptSize(&e)}
	d.entry.Raw = nil
	if use == useShare {
		d.hits.Store(1)
	}
	c.store(slot, d)
	return e, err
}

// keptSize is what keeping e costs: its strings and the rest.
func keptSize(e *Entry) int64 {
	return int64(decodedSize + len(e.ObjectType) + len(e.ObjectID) + len(e.RootID) +
		len(e.RequestID) + len(e.Organisation) + len(e.OrganisationID))
}

func (c *decodeCache) moveLead(seq uint64) {
	for {
		lead := c.lead.Load()
		if seq <= lead || c.lead.CompareAndSwap(lead, seq) {
			return
		}
	}
}

// Pacing of the intake: it keeps at most paceAhead entries ahead of the
// webhook furthest on, waiting pacePoll at a time, as long as that one
// moves at least paceMoves entries every paceStall.
const (
	paceAhead = 1024
	pacePoll  = time.Millisecond
	paceStall = 50 * time.Millisecond
	paceMoves = 50
)

// pace holds the intake back while seq is more than paceAhead entries
// ahead of the webhook of this process furthest on, so that the intake
// decodes each entry once for all of them while they drain a backlog. It
// reports whether the intake should keep what it decodes. When no webhook
// reads here, or when the one furthest on moves fewer than paceMoves
// entries in paceStall (held back by its endpoint, or slow), the intake
// runs free and keeps nothing, without waiting again until the webhooks
// come within paceAhead of where it gave up: it never crawls at the pace
// of a slow webhook.
func (c *decodeCache) pace(ctx context.Context, seq uint64) bool {
	if c.readers.Load() == 0 {
		return false
	}
	lead := c.lead.Load()
	if seq <= lead+paceAhead {
		return true
	}
	if lead+paceAhead < c.free.Load() {
		return false
	}
	from, until := lead, time.Now().Add(paceStall)
	for seq > lead+paceAhead {
		if ctx.Err() != nil {
			return false
		}
		if now := time.Now(); now.After(until) {
			if lead-from < paceMoves {
				c.free.Store(seq)
				return false
			}
			from, until = lead, now.Add(paceStall)
		}
		c.sleep(pacePoll)
		lead = c.lead.Load()
	}
	return true
}

func (c *decodeCache) sleep(d time.Duration) {
	if c.sleepHook != nil {
		c.sleepHook(d)
		return
	}
	time.Sleep(d)
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

// held is what the cache's entries cost now (tests).
func (c *decodeCache) held() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}
