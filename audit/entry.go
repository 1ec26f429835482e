// Package audit is the audit entry model and the NATS JetStream source the
// entries come from: the connection, the stream, one durable consumer per
// webhook, the dead-letter stream and the embedded server.
package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/auditrelay/auditrelay/config"
)

// Operations, normalised from TheHive 3's Creation/Update/Delete and TheHive
// 4/5's create/update/delete.
const (
	Creation = config.OpCreation
	Update   = config.OpUpdate
	Delete   = config.OpDelete
)

// Entry is one audit entry. Raw is the message exactly as published: it is
// what a webhook receives, never re-encoded. The other fields are read from
// it for filters, ordering keys and summaries. Of the optional fields, one
// of an unexpected type reads as its zero value: the entry is still passed
// through (SPEC §1).
type Entry struct {
	Raw            []byte
	Operation      string // normalised: Creation | Update | Delete
	ObjectType     string
	ObjectID       string
	RootID         string
	Base           bool
	RequestID      string
	StartDate      int64
	Organisation   string
	OrganisationID string

	// details and object are where those values sit in Raw, read only
	// when a summary is asked for (Slack): most deliveries never need
	// them. Offsets, not slices: an Entry the decode cache keeps holds no
	// consumer's bytes, and applies to any copy of the same bytes.
	details, object span
}

// span is a value's place in an entry's Raw; the zero span is no value.
type span struct{ from, to int }

// in is the span's bytes in raw, nil for the zero span or a raw too
// short for it (an Entry built by hand).
func (s span) in(raw []byte) []byte {
	if s.to == 0 || s.to > len(raw) {
		return nil
	}
	return raw[s.from:s.to]
}

// spanOf is where val, a slice of raw (as eachField gives), sits in raw.
func spanOf(raw, val []byte) span {
	from := cap(raw) - cap(val)
	return span{from, from + len(val)}
}

// ErrInvalid is wrapped by every error Decode returns, so callers can tell a
// bad entry (dead-lettered) from anything else.
var ErrInvalid = errors.New("invalid audit entry")

// InvalidError says why a message is not an audit entry; Reason goes into
// the Auditrelay-Reason header of its dead letter.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return "invalid audit entry: " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Unwrap() error { return ErrInvalid }

func invalid(format string, a ...any) error {
	return &InvalidError{Reason: fmt.Sprintf(format, a...)}
}

// Decode reads an audit entry from raw without copying or rewriting it: the
// returned Entry's Raw is raw itself. maxBytes <= 0 means no limit. Every
// error wraps ErrInvalid and is an *InvalidError.
//
// It validates raw once (validJSON, as json.Valid does but in one pass
// without a per-byte state machine) and then walks the top-level fields by
// their spans, decoding only the few small values it needs: two passes, no
// copy of the entry, where json.Unmarshal would take four.
func Decode(raw []byte, maxBytes int64) (Entry, error) {
	if maxBytes > 0 && int64(len(raw)) > maxBytes {
		return Entry{}, invalid("entry of %d bytes is larger than maxEntryBytes (%d)", len(raw), maxBytes)
	}
	if !utf8.Valid(raw) {
		return Entry{}, invalid("not valid UTF-8")
	}
	if i := skipSpace(raw, 0); i == len(raw) || raw[i] != '{' {
		return Entry{}, invalid("not a JSON object")
	}
	if !validJSON(raw) {
		return Entry{}, invalid("not JSON: %v", json.Unmarshal(raw, new(struct{})))
	}
	e := Entry{Raw: raw}
	var op, action, typ, id []byte
	eachField(raw, func(key, val []byte) {
		switch string(key) {
		case "operation":
			op = val
		case "action":
			action = val
		case "objectType":
			typ = val
		case "objectId":
			id = val
		default:
			e.optional(string(key), val)
		}
	})
	return e, e.required(op, action, typ, id)
}

// required sets and checks SPEC §1's required fields. TheHive 5's audit
// objects spell the operation `action`, read when `operation` is absent.
func (e *Entry) required(op, action, typ, id []byte) error {
	field := "operation"
	if op == nil || string(op) == "null" {
		op, field = action, "action"
	}
	if op == nil || string(op) == "null" {
		return invalid(`missing required field "operation" (or "action")`)
	}
	s, ok := jsonString(op)
	if !ok {
		return invalid(`field %q: %s, not a string`, field, kind(op))
	}
	if e.Operation = config.NormaliseOperation(s); e.Operation == "" {
		return invalid(`field %q: %q is not Creation, Update or Delete`, field, s)
	}
	var err error
	if e.ObjectType, err = requiredString("objectType", typ); err != nil {
		return err
	}
	e.ObjectID, err = requiredString("objectId", id)
	return err
}

func requiredString(name string, val []byte) (string, error) {
	if val == nil || string(val) == "null" {
		return "", invalid("missing required field %q", name)
	}
	s, ok := jsonString(val)
	switch {
	case !ok:
		return "", invalid("field %q: %s, not a string", name, kind(val))
	case s == "":
		return "", invalid("missing required field %q", name)
	}
	return s, nil
}

// optional reads the optional fields auditrelay uses; a value of another
// type than expected is left at its zero value.
func (e *Entry) optional(key string, val []byte) {
	switch key {
	case "rootId":
		e.RootID, _ = jsonString(val)
	case "base":
		e.Base = string(val) == "true"
	case "requestId":
		e.RequestID, _ = jsonString(val)
	case "startDate":
		e.StartDate = jsonInt(val)
	case "organisation":
		e.Organisation, _ = jsonString(val)
	case "organisationId":
		e.OrganisationID, _ = jsonString(val)
	case "details":
		e.details = spanOf(e.Raw, val)
	case "object":
		e.object = spanOf(e.Raw, val)
	}
}

// Title is details.title, else object.title, else "".
func (e *Entry) Title() string {
	if t := stringField(e.details.in(e.Raw), "title"); t != "" {
		return t
	}
	return stringField(e.object.in(e.Raw), "title")
}

// Who is object.updatedBy, else object.createdBy, else "".
func (e *Entry) Who() string {
	if w := stringField(e.object.in(e.Raw), "updatedBy"); w != "" {
		return w
	}
	return stringField(e.object.in(e.Raw), "createdBy")
}

// Key returns the ordering key for orderBy: entries with the same
// non-empty key reach a webhook in stream order. An entry without a rootId
// falls back to its objectId; OrderByNone returns "".
func (e *Entry) Key(orderBy config.OrderBy) string {
	switch orderBy {
	case config.OrderByRootID:
		if e.RootID != "" {
			return e.RootID
		}
		return e.ObjectID
	case config.OrderByObjectID:
		return e.ObjectID
	}
	return ""
}

// Fields calls fn with every top-level key of the entry, as written (JSON
// escapes kept), and the span of its value in Raw: a caller decodes only
// the fields it needs.
func (e *Entry) Fields(fn func(key, val []byte)) { eachField(e.Raw, fn) }

// Fact is the JSON value of key in details, else in object, else nil (a
// null counts as absent): what an update changed, else the object's state,
// as Title reads a title.
func (e *Entry) Fact(key string) []byte {
	for _, obj := range [][]byte{e.details.in(e.Raw), e.object.in(e.Raw)} {
		var found []byte
		eachField(obj, func(k, v []byte) {
			if string(k) == key && string(v) != "null" {
				found = v
			}
		})
		if found != nil {
			return found
		}
	}
	return nil
}

// Identity is a stable id of the audit event the entry records, for the
// Nats-Msg-Id of the ingest (SPEC §6) and of anything else that stores
// TheHive's entries: the same event POSTed twice has the same identity,
// whatever the bytes' order. It hashes requestId, objectId, the normalised
// operation, startDate and organisationId, so that the copy TheHive 4 sends
// for each organisation stays its own entry. An entry without startDate
// (TheHive 5's audit objects have none) has too weak an identity for two
// changes of one object in one request, so its bytes are hashed too: only a
// byte-identical repeat is then the same entry.
func (e *Entry) Identity() string {
	h := sha256.New()
	for _, f := range []string{e.RequestID, e.ObjectID, e.Operation, strconv.FormatInt(e.StartDate, 10), e.OrganisationID} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	if e.StartDate == 0 {
		h.Write(e.Raw)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}
