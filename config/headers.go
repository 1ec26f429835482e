package config

import (
	"net/http"
	"strings"
)

// reservedHeaders describe the body, its framing or its signature: a
// configured value would make the request lie about what it carries, so
// `headers` may not set them. Every Auditrelay-* name is reserved too.
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

// IsReservedHeader reports whether a header (canonical form) is auditrelay's
// to set: `headers` may not name it.
func IsReservedHeader(canonical string) bool {
	return reservedHeaders[canonical] || strings.HasPrefix(canonical, "Auditrelay-")
}

// validHeaderName is RFC 9110's token.
func validHeaderName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	})
}

// validHeaderValue accepts what net/http sends: no control character but
// horizontal tab.
func validHeaderValue(v string) bool {
	return !strings.ContainsFunc(v, func(r rune) bool { return (r < ' ' && r != '\t') || r == 0x7f })
}

// checkHeader is the problem of one configured header, nil for none. No
// value is ever quoted: any header may carry a credential.
func checkHeader(name, value string, auth AuthType) error {
	canonical := http.CanonicalHeaderKey(name)
	switch {
	case !validHeaderName(name):
		return newKind(ErrInvalidHeader, "%s: name is not an HTTP token", ErrInvalidHeader)
	case !validHeaderValue(value):
		return newKind(ErrInvalidHeader, "%s: value holds a control character", ErrInvalidHeader)
	case IsReservedHeader(canonical):
		return newKind(ErrReservedHeader, "%s", ErrReservedHeader)
	case canonical == "Authorization" && auth != AuthNone:
		return newKind(ErrAuth, "%s: at most one of auth & headers.Authorization", ErrAuth)
	}
	return nil
}
