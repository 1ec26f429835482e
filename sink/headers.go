package sink

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/auditrelay/auditrelay/config"
)

// ErrReservedHeader is wrapped by the error for a configured header that
// auditrelay sets itself.
var ErrReservedHeader = errors.New("reserved header, set by auditrelay")

// ErrInvalidHeader is wrapped by the error for a configured header name or
// value that HTTP cannot carry.
var ErrInvalidHeader = errors.New("invalid HTTP header")

// ErrAuth is wrapped by the errors for an unusable auth block.
var ErrAuth = errors.New("invalid auth")

// reservedHeaders describe the body, its framing or its signature: a
// configured value would make the request lie about what it carries, so
// `headers` may not set them.
var reservedHeaders = map[string]bool{
	"Content-Type":      true,
	"Content-Encoding":  true,
	"Content-Length":    true,
	"Transfer-Encoding": true,
	"Host":              true,
	"Webhook-Id":        true,
	"Webhook-Timestamp": true,
	"Webhook-Signature": true,
}

// isReservedHeader also reserves every Auditrelay-* name (Auditrelay-Attempt
// and those to come).
func isReservedHeader(canonical string) bool {
	return reservedHeaders[canonical] || strings.HasPrefix(canonical, "Auditrelay-")
}

// StaticHeaders returns the headers every request of wh carries, computed
// once per webhook; the engine adds webhook-id, webhook-timestamp,
// webhook-signature and Auditrelay-Attempt per attempt.
//
// Precedence: the configured `headers` are applied over User-Agent (so they
// may replace it) but never over a reserved header (Content-Type,
// Content-Encoding, Content-Length, Transfer-Encoding, Host, webhook-*,
// Auditrelay-*), and never over an Authorization that `auth` sets; with
// auth none, `headers` may carry an Authorization of its own.
// ValidateHeaders reports each ignored header as a configuration error.
func StaticHeaders(wh *config.Webhook, version string) http.Header {
	h := make(http.Header, 5+len(wh.Headers))
	for name, value := range wh.Headers {
		if !isReservedHeader(http.CanonicalHeaderKey(name)) {
			h.Set(name, value)
		}
	}
	h.Set("Content-Type", "application/json")
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", userAgent(wh, version))
	}
	if auth := authorization(wh.Auth); auth != "" {
		h.Set("Authorization", auth)
	}
	if wh.WS.CompressionEnabled {
		h.Set("Content-Encoding", "gzip")
	}
	return h
}

func userAgent(wh *config.Webhook, version string) string {
	if wh.WS.UserAgent != "" {
		return wh.WS.UserAgent
	}
	return "auditrelay/" + version
}

// authorization is the Authorization value TheHive 4 sends for auth, or ""
// for none (and for a type ValidateHeaders rejects).
func authorization(a config.Auth) string {
	switch strings.ToLower(a.Type) {
	case "basic":
		creds := a.Username + ":" + string(a.Password)
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
	case "bearer":
		return "Bearer " + string(a.Key)
	case "key":
		return string(a.Key)
	}
	return ""
}

// ValidateHeaders reports every problem of wh's auth and headers, each
// prefixed with its key path, joined: what StaticHeaders would ignore, and
// what net/http would refuse at the first attempt. No value is ever quoted,
// since an Authorization header is a credential.
func ValidateHeaders(wh *config.Webhook) error {
	errs := []error{validateAuth(wh)}
	names := make([]string, 0, len(wh.Headers))
	for name := range wh.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := validateHeader(wh, name, wh.Headers[name]); err != nil {
			errs = append(errs, fmt.Errorf("%s.headers.%s: %w", wh.KeyPath, strconv.Quote(name), err))
		}
	}
	return errors.Join(errs...)
}

func validateHeader(wh *config.Webhook, name, value string) error {
	canonical := http.CanonicalHeaderKey(name)
	switch {
	case !validHeaderName(name):
		return fmt.Errorf("%w: name is not an HTTP token", ErrInvalidHeader)
	case !validHeaderValue(value):
		return fmt.Errorf("%w: value holds a control character", ErrInvalidHeader)
	case isReservedHeader(canonical):
		return ErrReservedHeader
	case canonical == "Authorization" && authorization(wh.Auth) != "":
		return fmt.Errorf("%w: at most one of auth & headers.Authorization", ErrAuth)
	}
	return nil
}

func validateAuth(wh *config.Webhook) error {
	a := wh.Auth
	var err error
	switch strings.ToLower(a.Type) {
	case "", "none":
		return nil
	case "basic":
		if a.Username == "" {
			err = fmt.Errorf("%w: username is required for type basic", ErrAuth)
		}
	case "bearer", "key":
		if a.Key == "" {
			err = fmt.Errorf("%w: key is required for type %s", ErrAuth, strings.ToLower(a.Type))
		}
	default:
		err = fmt.Errorf("%w: type %q is not none, basic, bearer or key", ErrAuth, a.Type)
	}
	if err == nil && !validHeaderValue(authorization(a)) {
		err = fmt.Errorf("%w: credentials hold a control character", ErrAuth)
	}
	if err != nil {
		return fmt.Errorf("%s.auth: %w", wh.KeyPath, err)
	}
	return nil
}

// validHeaderName is RFC 9110's token.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue accepts what net/http sends: no control character but
// horizontal tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// WebhookID returns the webhook-id of the request carrying the entries
// first..last of stream to webhook: `<stream>.<webhook>.<seq>` for one entry
// (first == last), `<stream>.<webhook>.<first>-<last>` for a batch, e.g.
// `THEHIVE_AUDIT.siem.1234`.
//
// It is readable in a receiver's logs and needs no lookup table; it is the
// same on every attempt and every redelivery, since it derives from stream
// positions only, and unique per webhook and entry because sequences are
// unique in a stream. Names go through the same rewriting as NATS subject
// tokens (every character outside [A-Za-z0-9_-] becomes '_', config
// .SubjectToken), which keeps the id printable ASCII without '.', and keeps
// it unique because names colliding that way are a configuration error.
func WebhookID(stream, webhook string, first, last uint64) string {
	var b strings.Builder
	b.Grow(len(stream) + len(webhook) + 2 + 2*20 + 1)
	writeIDToken(&b, stream)
	b.WriteByte('.')
	writeIDToken(&b, webhook)
	b.WriteByte('.')
	var num [20]byte
	b.Write(strconv.AppendUint(num[:0], first, 10))
	if last != first {
		b.WriteByte('-')
		b.Write(strconv.AppendUint(num[:0], last, 10))
	}
	return b.String()
}

// writeIDToken writes s as config.SubjectToken would, without its regexp
// and allocations: one '_' per rune outside [A-Za-z0-9_-].
func writeIDToken(b *strings.Builder, s string) {
	for _, r := range s {
		if r < 0x80 && isIDByte(byte(r)) {
			b.WriteByte(byte(r))
		} else {
			b.WriteByte('_')
		}
	}
}

func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
