package sink

import (
	"compress/gzip"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// errNoEntries is returned by Encoder.Body for an empty batch: there is no
// request to make.
var errNoEntries = errors.New("no entries to encode")

// Encoder writes the request bodies of one webhook. It is built once per
// webhook and safe for concurrent use.
//
// The body's shape depends on the configuration, never on how many entries
// a request happens to carry: with batch.maxEntries > 1 it is always a JSON
// array (of one element when only one entry was waiting), so a receiver
// parses every request of a webhook the same way.
type Encoder struct {
	format config.Format
	batch  bool
	gzip   bool
	// thinPrefix is `{"webhook":"<name>","eventId":`, escaped once.
	thinPrefix []byte
	// splunkMeta is the `,"host":…,"source":…` part of every HEC event.
	splunkMeta []byte
	tmpl       *tmplBody
}

// NewEncoder reads wh's format, batch size, compression and name. Its one
// error is a template that config parsed and that fails to build here.
func NewEncoder(wh *config.Webhook) (*Encoder, error) {
	format := wh.Format
	e := &Encoder{format: format, batch: wh.Batch.MaxEntries > 1, gzip: wh.WS.CompressionEnabled}
	e.thinPrefix = append([]byte(`{"webhook":`), appendJSONString(nil, wh.Name, false)...)
	e.thinPrefix = append(e.thinPrefix, `,"eventId":`...)
	e.splunkMeta = splunkMeta(wh.Splunk)
	if format == config.FormatTemplate {
		t, err := newTmplBody(wh)
		if err != nil {
			return nil, err
		}
		e.tmpl = t
	}
	return e, nil
}

// ContentType is the Content-Type of every body: the template's own with
// format = template, else JSON.
func (e *Encoder) ContentType() string {
	if e.tmpl != nil && e.tmpl.contentType != "" {
		return e.tmpl.contentType
	}
	return "application/json"
}

// ContentEncoding is the Content-Encoding of every body: "gzip" with
// ws.compressionEnabled, else "".
func (e *Encoder) ContentEncoding() string {
	if e.gzip {
		return "gzip"
	}
	return ""
}

// Body appends to dst the request body for msgs and returns it, so the
// caller can reuse one buffer per worker. Without batching msgs holds
// exactly one message. With a nil dst, a single audit entry's body is its
// Raw itself, not a copy: the caller must not write to it.
//
// For format audit each entry is its Raw bytes exactly as published: never
// re-encoded and never trimmed, so a trailing newline an application put
// after its object is delivered too. JSON whitespace between array elements
// is insignificant, so a batch stays valid JSON and each element is still
// the published entry.
func (e *Encoder) Body(dst []byte, msgs []*audit.Message) ([]byte, error) {
	if err := e.check(msgs); err != nil {
		return dst, err
	}
	if e.gzip {
		return appendGzip(dst, e, msgs)
	}
	if dst == nil && e.format == config.FormatAudit && !e.batch {
		// The entry as published is the body: no copy. Raw is never
		// written to, and a caller passing no buffer asks for no copy.
		return msgs[0].Entry.Raw, nil
	}
	return e.appendPlain(dst, msgs)
}

func (e *Encoder) check(msgs []*audit.Message) error {
	if len(msgs) == 0 {
		return errNoEntries
	}
	if len(msgs) > 1 && !e.batch {
		return fmt.Errorf("encode %d entries: batch.maxEntries is 1", len(msgs))
	}
	if e.format != config.FormatAudit {
		return nil
	}
	for _, m := range msgs {
		if len(m.Entry.Raw) == 0 {
			return fmt.Errorf("encode entry %d: no raw bytes", m.Seq)
		}
	}
	return nil
}

// appendPlain writes the body before any compression. Only a template can
// fail, on an entry: see renderError.
func (e *Encoder) appendPlain(dst []byte, msgs []*audit.Message) ([]byte, error) {
	switch e.format {
	case config.FormatSlack:
		return appendSlack(dst, msgs), nil
	case config.FormatThin:
		return e.appendList(dst, msgs, e.appendThin), nil
	case config.FormatTeams:
		return appendTeams(dst, msgs), nil
	case config.FormatSplunk:
		return e.appendSplunk(dst, msgs), nil
	case config.FormatTemplate:
		return e.tmpl.render(dst, msgs, e.batch)
	}
	return e.appendList(dst, msgs, appendRaw), nil
}

// appendList writes one element alone, or a JSON array when batching.
func (e *Encoder) appendList(dst []byte, msgs []*audit.Message, elem func([]byte, *audit.Message) []byte) []byte {
	if !e.batch {
		return elem(dst, msgs[0])
	}
	dst = append(dst, '[')
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = elem(dst, m)
	}
	return append(dst, ']')
}

func appendRaw(dst []byte, m *audit.Message) []byte { return append(dst, m.Entry.Raw...) }

func (e *Encoder) appendThin(dst []byte, m *audit.Message) []byte {
	dst = append(dst, e.thinPrefix...)
	dst = strconv.AppendUint(dst, m.Seq, 10)
	return append(dst, '}')
}

// appendSlack writes {"text":"…"} with one line per entry, e.g.
// `Creation case "Test case for webhook" by admin`.
func appendSlack(dst []byte, msgs []*audit.Message) []byte {
	dst = append(dst, `{"text":"`...)
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, `\n`...)
		}
		dst = appendSlackLine(dst, &m.Entry)
	}
	return append(dst, `"}`...)
}

// appendSlackLine writes the line's text already escaped for a JSON string,
// without the quotes around it.
func appendSlackLine(dst []byte, e *audit.Entry) []byte {
	dst = appendSlackText(dst, e.Operation)
	dst = append(dst, ' ')
	dst = appendSlackText(dst, e.ObjectType)
	dst = append(dst, ' ')
	if title := e.Title(); title != "" {
		dst = append(dst, `\"`...)
		dst = appendSlackText(dst, title)
		dst = append(dst, `\"`...)
	} else {
		dst = appendSlackText(dst, e.ObjectID)
	}
	if who := e.Who(); who != "" {
		dst = append(dst, " by "...)
		dst = appendSlackText(dst, who)
	}
	return dst
}

func appendSlackText(dst []byte, s string) []byte { return appendJSONContent(dst, s, true) }

// appendJSONString writes s as a quoted JSON string.
func appendJSONString(dst []byte, s string, slack bool) []byte {
	dst = append(dst, '"')
	dst = appendJSONContent(dst, s, slack)
	return append(dst, '"')
}

// appendJSONContent escapes s for the inside of a JSON string. With slack,
// it also escapes &, < and > as Slack's text requires, and turns control
// characters into spaces so each entry stays on its own line.
func appendJSONContent(dst []byte, s string, slack bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			dst = appendJSONRune(dst, r, size == 1)
			i += size
			continue
		}
		dst = appendJSONByte(dst, c, slack)
		i++
	}
	return dst
}

// appendJSONRune writes a non-ASCII rune; invalid UTF-8 becomes U+FFFD as
// encoding/json does, and U+2028/U+2029 are escaped for JavaScript readers.
func appendJSONRune(dst []byte, r rune, invalid bool) []byte {
	switch {
	case invalid:
		return append(dst, `\ufffd`...)
	case r == '\u2028':
		return append(dst, `\u2028`...)
	case r == '\u2029':
		return append(dst, `\u2029`...)
	}
	return utf8.AppendRune(dst, r)
}

func appendJSONByte(dst []byte, c byte, slack bool) []byte {
	switch {
	case slack && c == '&':
		return append(dst, "&amp;"...)
	case slack && c == '<':
		return append(dst, "&lt;"...)
	case slack && c == '>':
		return append(dst, "&gt;"...)
	case slack && (c < 0x20 || c == 0x7f):
		return append(dst, ' ')
	case c == '"' || c == '\\':
		return append(dst, '\\', c)
	case c < 0x20:
		const hex = "0123456789abcdef"
		return append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
	}
	return append(dst, c)
}

// gzipState is what one compression needs. Pooled, because a flate writer
// costs about a megabyte to build: see BenchmarkEncoderBodyGzip*.
type gzipState struct {
	zw    *gzip.Writer
	plain []byte
	out   appendWriter
}

var gzipPool = sync.Pool{New: func() any { return &gzipState{zw: gzip.NewWriter(nil)} }}

// maxPooledBody keeps one huge batch from pinning its buffer in the pool.
const maxPooledBody = 1 << 20

func appendGzip(dst []byte, e *Encoder, msgs []*audit.Message) ([]byte, error) {
	st := gzipPool.Get().(*gzipState)
	defer st.release()
	plain, err := e.appendPlain(st.plain[:0], msgs)
	st.plain = plain
	if err != nil {
		return dst, err
	}
	st.out.b = dst
	st.zw.Reset(&st.out)
	if _, err := st.zw.Write(st.plain); err != nil {
		return dst, fmt.Errorf("gzip body: %w", err)
	}
	if err := st.zw.Close(); err != nil {
		return dst, fmt.Errorf("gzip body: %w", err)
	}
	return st.out.b, nil
}

func (st *gzipState) release() {
	st.out.b = nil
	if cap(st.plain) > maxPooledBody {
		st.plain = nil
	}
	gzipPool.Put(st)
}

// appendWriter is an io.Writer appending to a slice: gzip writes straight
// into the caller's buffer.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}
