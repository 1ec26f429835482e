package relay

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/sink"
)

// fetchTimeout bounds one lookup in the stream, so a NATS outage answers
// 503 rather than holding the receiver's request.
const fetchTimeout = 5 * time.Second

// errNoSuchEvent is the body of every 404 of the fetch API.
var errNoSuchEvent = map[string]string{"error": "no such event"}

// fetchEvent serves GET /webhooks/<name>/events/<id>, the thin format's
// event-fetch API (SPEC §4): the entry at stream sequence id, exactly as
// published, for as long as the stream keeps it.
//
// Credentials are checked before anything else, so an unauthenticated
// caller learns nothing, not even which webhooks exist. Every "no such
// event" answers the same 404 (unknown or disabled webhook, an id that is
// not a sequence, an entry gone from the stream, one the webhook's filter
// drops), so a receiver cannot read another webhook's entries through its
// own name.
func (r *Relay) fetchEvent(w http.ResponseWriter, req *http.Request) {
	cfg := r.config()
	if !fetchAuthorized(req, cfg.Auditrelay.Admin.Fetch) {
		w.Header().Set("WWW-Authenticate", `Basic realm="auditrelay"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong or missing credentials"})
		return
	}
	wh := cfg.Webhook(req.PathValue("name"))
	seq, err := strconv.ParseUint(req.PathValue("id"), 10, 64)
	if wh == nil || !wh.Enabled || err != nil || seq == 0 {
		writeJSON(w, http.StatusNotFound, errNoSuchEvent)
		return
	}
	msg, code := r.lookup(req.Context(), seq)
	if code == http.StatusServiceUnavailable {
		writeJSON(w, code, map[string]string{"error": "the audit stream cannot be read now; try again"})
		return
	}
	// The filter is built per request: it costs a few small allocations,
	// far below the stream lookup, and always follows the current config
	// after a reload without more state on Relay.
	if msg == nil || !sink.NewFilter(wh.Filter).Match(&msg.Entry) {
		writeJSON(w, http.StatusNotFound, errNoSuchEvent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(msg.Entry.Raw)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(msg.Entry.Raw)
}

// lookup reads the entry at seq. Without a message it returns the status
// to answer: 404 for an entry the stream no longer keeps (maxAge, a purge)
// or a message there that is not an audit entry (never delivered, so never
// announced), 503 when NATS cannot answer.
func (r *Relay) lookup(ctx context.Context, seq uint64) (*audit.Message, int) {
	src := r.source()
	if src == nil {
		return nil, http.StatusServiceUnavailable
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	msg, err := src.Entry(ctx, seq)
	switch {
	case err == nil:
		return msg, http.StatusOK
	case errors.Is(err, jetstream.ErrMsgNotFound), errors.Is(err, audit.ErrInvalid):
		return nil, http.StatusNotFound
	}
	r.log.Warn("event fetch: stream lookup failed", "seq", seq, "err", err)
	return nil, http.StatusServiceUnavailable
}

// fetchAuthorized checks ?key=K&secret=S, else HTTP Basic K:S, against
// auditrelay.admin.fetch. Unset credentials authorize nobody. Both halves
// are always compared, over their SHA-256 digests, so neither the time
// taken nor an early exit tells how much of a guess was right or how long
// the real values are.
func fetchAuthorized(req *http.Request, want config.Fetch) bool {
	if want.Key == "" || want.Secret == "" {
		return false
	}
	key, secret, ok := fetchCredentials(req)
	if !ok {
		return false
	}
	k := equalSecret(key, string(want.Key))
	s := equalSecret(secret, string(want.Secret))
	return k&s == 1
}

// fetchCredentials reads the query's key and secret when either is given,
// else the Basic credentials.
func fetchCredentials(req *http.Request) (key, secret string, ok bool) {
	q := req.URL.Query()
	if q.Has("key") || q.Has("secret") {
		return q.Get("key"), q.Get("secret"), true
	}
	return req.BasicAuth()
}

// equalSecret is 1 when got equals want, in time independent of both.
func equalSecret(got, want string) int {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:])
}
