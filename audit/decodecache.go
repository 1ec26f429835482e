package audit

import (
	"bytes"
	"sync/atomic"
)

// decodeCache lets the consumers of one source decode each entry once:
// every webhook's consumer and the intake receive the same stream sequence
// at about the same time. A slot is reused only for the same sequence and
// the same bytes (a stream deleted and created again restarts its
// sequences), so a hit is always the entry those bytes decode to.
type decodeCache struct {
	slots [1024]atomic.Pointer[decoded]
}

type decoded struct {
	seq   uint64
	entry Entry
	err   error
}

// decode returns raw's entry, from the cache when another consumer decoded
// the same sequence. The returned Entry's Raw is raw itself.
func (c *decodeCache) decode(seq uint64, raw []byte, max int64) (Entry, error) {
	slot := &c.slots[seq%uint64(len(c.slots))]
	if d := slot.Load(); d != nil && d.seq == seq && bytes.Equal(d.entry.Raw, raw) {
		e := d.entry
		e.Raw = raw
		return e, d.err
	}
	e, err := Decode(raw, max)
	if err != nil {
		e.Raw = raw
	}
	slot.Store(&decoded{seq: seq, entry: e, err: err})
	return e, err
}
