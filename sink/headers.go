package sink

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"

	"github.com/auditrelay/auditrelay/config"
)

// staticHeaders returns the headers every request of wh carries, computed
// once per webhook; the engine adds webhook-id, webhook-timestamp,
// webhook-signature and Auditrelay-Attempt per attempt.
//
// The configured `headers` may replace User-Agent and, with auth none, set
// an Authorization of their own. config refuses one that names a header
// auditrelay sets (config.IsReservedHeader) or an Authorization beside
// auth; one set here by hand is still never sent.
func staticHeaders(wh *config.Webhook, version string) http.Header {
	h := make(http.Header, 5+len(wh.Headers))
	for name, value := range wh.Headers {
		if !config.IsReservedHeader(http.CanonicalHeaderKey(name)) {
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
// for none.
func authorization(a config.Auth) string {
	switch a.Type {
	case config.AuthBasic:
		creds := a.Username + ":" + string(a.Password)
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(creds))
	case config.AuthBearer:
		return "Bearer " + string(a.Key)
	case config.AuthKey:
		return string(a.Key)
	}
	return ""
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
