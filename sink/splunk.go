package sink

import (
	"strconv"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// splunkMeta is the metadata part of every HEC event, escaped once; an
// empty setting is left out, so HEC applies the token's default.
func splunkMeta(s config.Splunk) []byte {
	var b []byte
	for _, kv := range [][2]string{{"host", s.Host}, {"source", s.Source}, {"sourcetype", s.Sourcetype}, {"index", s.Index}} {
		if kv[1] == "" {
			continue
		}
		b = append(b, ',')
		b = appendJSONString(b, kv[0], false)
		b = append(b, ':')
		b = appendJSONString(b, kv[1], false)
	}
	return b
}

// appendSplunk writes HTTP Event Collector events: one, or for a batch
// the events one after another, a line each, as /services/collector/event
// takes them (not a JSON array).
func (e *Encoder) appendSplunk(dst []byte, msgs []*audit.Message) []byte {
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = e.appendSplunkEvent(dst, m)
	}
	return dst
}

// appendSplunkEvent writes {"time":…,<meta>,"event":<entry>}: time is the
// entry's startDate in seconds with milliseconds, else when the stream
// stored it; the entry goes in unchanged.
func (e *Encoder) appendSplunkEvent(dst []byte, m *audit.Message) []byte {
	ms := m.Entry.StartDate
	if ms == 0 {
		ms = m.Time.UnixMilli()
	}
	dst = append(dst, `{"time":`...)
	dst = appendEpochMillis(dst, ms)
	dst = append(dst, e.splunkMeta...)
	dst = append(dst, `,"event":`...)
	dst = append(dst, m.Entry.Raw...)
	return append(dst, '}')
}

// appendEpochMillis writes ms as seconds with three decimals, exactly
// (1505476659487 is 1505476659.487), without going through a float.
func appendEpochMillis(dst []byte, ms int64) []byte {
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	dst = strconv.AppendInt(dst, ms/1000, 10)
	frac := ms % 1000
	return append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
}
