package sink

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"text/template"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// tmplBody is a webhook's format = template: a Go text/template with the
// functions of config.TemplateFuncs, executed over each entry (or batch).
type tmplBody struct {
	t           *template.Template
	contentType string
	json        bool // the body must be one JSON value
	ndjson      bool // each line that is not blank must be one
	webhook     string
}

// TemplateEntry is one entry as a template sees it.
type TemplateEntry struct {
	// Entry is the entry decoded as JSON; numbers keep their text
	// (json.Number), so an id or a date prints as written.
	Entry map[string]any
	// Raw is the entry exactly as published: {{ .Raw }} writes it, and
	// {{ json .Raw }} embeds it as JSON.
	Raw rawEntry
	// Seq is the entry's stream sequence, Time when the stream stored it.
	Seq  uint64
	Time time.Time
	// Operation is normalised: Creation, Update or Delete.
	Operation string
}

// templateData is what a template executes over: one entry's fields, with
// Entries holding that one entry; or, for a batch, Entries only.
type templateData struct {
	TemplateEntry
	Webhook string
	Entries []TemplateEntry
}

// rawEntry is an entry's bytes, written as they are and encoded by json as
// the JSON they are.
type rawEntry string

// MarshalJSON returns the entry itself.
func (r rawEntry) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// renderError is a template that failed on an entry at run time, or made a
// body that is not what its content type says. The entry is dead-lettered
// with it as the reason; the webhook goes on with the others.
type renderError struct {
	// Seq is the entry's stream sequence; 0 when a batch failed as a whole.
	Seq uint64
	Err error
}

func (e *renderError) Error() string { return e.Err.Error() }

// Unwrap returns the template's error.
func (e *renderError) Unwrap() error { return e.Err }

// seedEntries are examples/entries.jsonl (TestSeedEntriesAreTheExamples): a
// template runs over them when its webhook is built, so that one failing on
// ordinary entries is a configuration error rather than dead letters.
//
//go:embed seed_entries.jsonl
var seedEntries []byte

func newTmplBody(wh *config.Webhook) (*tmplBody, error) {
	where := wh.KeyPath + ".template.file"
	t, err := config.ParseTemplate(filepath.Base(wh.Template.File), wh.Template.Text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	b := &tmplBody{t: t, contentType: wh.Template.ContentType, json: wh.Template.IsJSON(),
		ndjson: wh.Template.IsNDJSON(), webhook: wh.Name}
	if err := b.trySeeds(wh); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", where, wh.Template.File, err)
	}
	return b, nil
}

// trySeeds renders the seed entries the webhook's filter lets through, and
// the send-test entry, each alone and, when batching, all together.
func (b *tmplBody) trySeeds(wh *config.Webhook) error {
	filter := NewFilter(wh.Filter)
	seeds := []*audit.Message{testMessage("0123456789abcdef0123")}
	sc := bufio.NewScanner(bytes.NewReader(seedEntries))
	sc.Buffer(nil, 1<<20)
	for seq := uint64(1); sc.Scan(); seq++ {
		e, err := audit.Decode(bytes.Clone(sc.Bytes()), 0)
		if err != nil {
			return fmt.Errorf("seed entry %d: %w", seq, err) // a bug: the seeds are kept valid
		}
		if filter.Match(&e) {
			seeds = append(seeds, &audit.Message{Entry: e, Seq: seq, Time: time.UnixMilli(e.StartDate)})
		}
	}
	batch := wh.Batch.MaxEntries > 1
	for _, m := range seeds {
		if _, err := b.render(nil, []*audit.Message{m}, batch); err != nil {
			return fmt.Errorf("on seed entry %s %s %s: %w", m.Entry.Operation, m.Entry.ObjectType, m.Entry.ObjectID, errors.Unwrap(err))
		}
	}
	if batch {
		if _, err := b.render(nil, seeds, true); err != nil {
			return fmt.Errorf("on a batch of %d seed entries: %w", len(seeds), errors.Unwrap(err))
		}
	}
	return nil
}

// render appends the body for msgs. Without batching msgs is one entry.
func (b *tmplBody) render(dst []byte, msgs []*audit.Message, batch bool) ([]byte, error) {
	data := templateData{Webhook: b.webhook, Entries: make([]TemplateEntry, len(msgs))}
	var seq uint64
	for i, m := range msgs {
		te, err := templateEntry(m)
		if err != nil {
			return dst, &renderError{Seq: m.Seq, Err: err}
		}
		data.Entries[i] = te
	}
	if !batch {
		data.TemplateEntry, seq = data.Entries[0], msgs[0].Seq
	}
	start := len(dst)
	w := appendWriter{b: dst}
	if err := b.t.Execute(&w, &data); err != nil {
		return dst, &renderError{Seq: seq, Err: err}
	}
	if err := b.check(w.b[start:]); err != nil {
		return dst, &renderError{Seq: seq, Err: err}
	}
	return w.b, nil
}

func templateEntry(m *audit.Message) (TemplateEntry, error) {
	te := TemplateEntry{Raw: rawEntry(m.Entry.Raw), Seq: m.Seq, Time: m.Time, Operation: m.Entry.Operation}
	dec := json.NewDecoder(bytes.NewReader(m.Entry.Raw))
	dec.UseNumber()
	if err := dec.Decode(&te.Entry); err != nil {
		return te, fmt.Errorf("template: decode entry: %w", err)
	}
	return te, nil
}

// check wants a JSON content type's body to be JSON, and an NDJSON one's
// lines to be.
func (b *tmplBody) check(body []byte) error {
	switch {
	case b.json && !json.Valid(body):
		return fmt.Errorf("template: %s: the body is not JSON (contentType %s): %w", b.t.Name(), b.contentType, jsonError(body))
	case b.ndjson:
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) > 0 && !json.Valid(line) {
				return fmt.Errorf("template: %s: line %d of the body is not JSON (contentType %s): %w", b.t.Name(), i+1, b.contentType, jsonError(line))
			}
		}
	}
	return nil
}

// jsonError says where a body stops being JSON.
func jsonError(body []byte) error {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}
