package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Sentinel errors: every FieldError wraps one, so tests and callers can use
// errors.Is without matching messages.
var (
	// ErrUnknownKey is a key auditrelay does not know inside a section it reads.
	ErrUnknownKey = errors.New("unknown key")
	// ErrRequired is a missing key or value.
	ErrRequired = errors.New("required")
	// ErrInvalid is a value of the wrong type, out of range or not one of the
	// allowed words.
	ErrInvalid = errors.New("invalid value")
	// ErrUnsupported is a key or value TheHive accepts but auditrelay cannot
	// honour.
	ErrUnsupported = errors.New("not supported by auditrelay")
	// ErrExclusive is two keys of which at most one may be set.
	ErrExclusive = errors.New("at most one of")
	// ErrDuplicate is a webhook name used twice, or two names that become the
	// same NATS subject token.
	ErrDuplicate = errors.New("duplicate")
	// ErrFile is a file named by the config that cannot be read.
	ErrFile = errors.New("cannot read file")
	// ErrReservedHeader is a configured header auditrelay sets itself.
	ErrReservedHeader = errors.New("reserved header, set by auditrelay")
	// ErrInvalidHeader is a configured header name or value HTTP cannot
	// carry.
	ErrInvalidHeader = errors.New("invalid HTTP header")
	// ErrAuth is an unusable auth block.
	ErrAuth = errors.New("invalid auth")
)

// FieldError is one problem of a config file, at a key path such as
// `webhooks.siem.ws.proxy.port`.
type FieldError struct {
	Path string
	Err  error
}

// Error returns "path: message".
func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Err.Error()
	}
	return e.Path + ": " + e.Err.Error()
}

// Unwrap returns the error, which wraps one of the sentinels.
func (e *FieldError) Unwrap() error { return e.Err }

// ErrorList is every problem of a config file, sorted by path; Error prints
// one per line so `auditrelay check` shows them all at once.
type ErrorList []*FieldError

// Error returns one problem per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes every FieldError to errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sorted orders the list by path then message and drops exact duplicates,
// which arise when a shared layer (play.ws, webhooks.ws) is read once per
// webhook.
func (l ErrorList) sorted() ErrorList {
	slices.SortStableFunc(l, func(a, b *FieldError) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Err.Error(), b.Err.Error())
	})
	return slices.CompactFunc(l, func(a, b *FieldError) bool { return a.Error() == b.Error() })
}

// kindError carries a natural message while wrapping a sentinel, so that
// messages read "required" or `"xml" is not one of …` rather than
// "invalid value: …" everywhere.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

func newKind(kind error, format string, args ...any) error {
	return &kindError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) error { return newKind(ErrInvalid, format, args...) }

func unsupported(why string) error {
	return newKind(ErrUnsupported, "%s (%s)", ErrUnsupported, why)
}

func exclusive(a, b string) error { return newKind(ErrExclusive, "at most one of %s & %s", a, b) }

var errRequired = newKind(ErrRequired, "required")

func unknownKey(key string, known []string) error {
	if s := closest(key, known); s != "" {
		return newKind(ErrUnknownKey, "unknown key, did you mean %q?", s)
	}
	return newKind(ErrUnknownKey, "unknown key")
}

// closest returns the known key nearest to key by edit distance, or "" when
// none is near enough to be a probable typo. Of equally near keys, the one
// sharing the longest prefix wins: a typo rarely hits the first letter
// (post: port, not host).
func closest(key string, known []string) string {
	best, bestDist, bestPrefix := "", 3, -1
	for _, k := range known {
		d := editDistance(strings.ToLower(key), strings.ToLower(k))
		p := commonPrefix(strings.ToLower(key), strings.ToLower(k))
		if d < len(key) && (d < bestDist || d == bestDist && p > bestPrefix) {
			best, bestDist, bestPrefix = k, d, p
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
