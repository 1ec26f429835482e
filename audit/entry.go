// Package audit is the audit entry model and the NATS JetStream source the
// entries come from: the connection, the stream, one durable consumer per
// webhook, the dead-letter stream and the embedded server.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Operations, normalised from TheHive 3's Creation/Update/Delete and TheHive
// 4/5's create/update/delete.
const (
	Creation = "Creation"
	Update   = "Update"
	Delete   = "Delete"
)

// Entry is one audit entry. Raw is the message exactly as published: it is
// what a webhook receives, never re-encoded. The other fields are read from
// it for filters, ordering keys and summaries.
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
	// Title is details.title, else object.title, else "".
	Title string
	// Who is object.updatedBy, else object.createdBy, else "".
	Who string
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

// NormaliseOperation maps any case of creation/create, update and delete to
// Creation, Update and Delete; it returns "" for anything else.
func NormaliseOperation(op string) string {
	switch strings.ToLower(op) {
	case "creation", "create":
		return Creation
	case "update":
		return Update
	case "delete":
		return Delete
	}
	return ""
}

// wire is what Decode reads of an entry; everything else is passed through
// untouched in Raw.
type wire struct {
	Operation      *string         `json:"operation"`
	ObjectType     *string         `json:"objectType"`
	ObjectID       *string         `json:"objectId"`
	RootID         string          `json:"rootId"`
	Base           bool            `json:"base"`
	RequestID      string          `json:"requestId"`
	StartDate      int64           `json:"startDate"`
	Organisation   string          `json:"organisation"`
	OrganisationID string          `json:"organisationId"`
	Details        json.RawMessage `json:"details"`
	Object         json.RawMessage `json:"object"`
}

type summary struct {
	Title     string `json:"title"`
	UpdatedBy string `json:"updatedBy"`
	CreatedBy string `json:"createdBy"`
}

// Decode reads an audit entry from raw without copying or rewriting it: the
// returned Entry's Raw is raw itself. maxBytes <= 0 means no limit. Every
// error wraps ErrInvalid and is an *InvalidError.
func Decode(raw []byte, maxBytes int64) (Entry, error) {
	if maxBytes > 0 && int64(len(raw)) > maxBytes {
		return Entry{}, invalid("entry of %d bytes is larger than maxEntryBytes (%d)", len(raw), maxBytes)
	}
	if !utf8.Valid(raw) {
		return Entry{}, invalid("not valid UTF-8")
	}
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Entry{}, invalid("not a JSON object")
	}
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return Entry{}, invalid("not JSON: %v", err)
	}
	return w.entry(raw)
}

func (w *wire) entry(raw []byte) (Entry, error) {
	if w.Operation == nil {
		return Entry{}, invalid(`missing required field "operation"`)
	}
	op := NormaliseOperation(*w.Operation)
	if op == "" {
		return Entry{}, invalid(`field "operation": %q is not Creation, Update or Delete`, *w.Operation)
	}
	if w.ObjectType == nil || *w.ObjectType == "" {
		return Entry{}, invalid(`missing required field "objectType"`)
	}
	if w.ObjectID == nil || *w.ObjectID == "" {
		return Entry{}, invalid(`missing required field "objectId"`)
	}
	e := Entry{
		Raw: raw, Operation: op, ObjectType: *w.ObjectType, ObjectID: *w.ObjectID,
		RootID: w.RootID, Base: w.Base, RequestID: w.RequestID, StartDate: w.StartDate,
		Organisation: w.Organisation, OrganisationID: w.OrganisationID,
	}
	e.Title, e.Who = w.summary()
	return e, nil
}

// summary reads the title and author for Slack lines. Details and object
// are optional and of any shape: what is not an object yields "".
func (w *wire) summary() (title, who string) {
	var d, o summary
	if len(w.Details) > 0 && w.Details[0] == '{' {
		_ = json.Unmarshal(w.Details, &d)
	}
	if len(w.Object) > 0 && w.Object[0] == '{' {
		_ = json.Unmarshal(w.Object, &o)
	}
	title = d.Title
	if title == "" {
		title = o.Title
	}
	who = o.UpdatedBy
	if who == "" {
		who = o.CreatedBy
	}
	return title, who
}

// Key returns the ordering key for orderBy (rootId | objectId | none): entries
// with the same non-empty key reach a webhook in stream order. An entry
// without a rootId falls back to its objectId; "none" returns "".
func (e *Entry) Key(orderBy string) string {
	switch orderBy {
	case "rootId":
		if e.RootID != "" {
			return e.RootID
		}
		return e.ObjectID
	case "objectId":
		return e.ObjectID
	}
	return ""
}
