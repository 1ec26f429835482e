package ingest

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// Results of a request, the label of auditrelay_ingest_requests_total.
const (
	resultStored       = "stored"
	resultDuplicate    = "duplicate"
	resultInvalid      = "invalid"
	resultUnauthorized = "unauthorized"
	resultTooLarge     = "too_large"
	resultUnavailable  = "unavailable"
)

// answer is what a request gets: the status, the JSON body, and for a
// rejection the result label and a reason for the log (never the body,
// never a credential).
type answer struct {
	code   int
	body   any
	result string
	reason string
}

// ServeHTTP takes one POST, whatever its path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	a := s.handle(w, r)
	if a.result != "" {
		s.metrics.requests.WithLabelValues(a.result).Inc()
	}
	switch a.code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", challenge(s.cfg.Auth.Type))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", retryAfter)
	}
	writeJSON(w, a.code, a.body)
	s.metrics.duration.Observe(time.Since(start).Seconds())
	if a.code >= 300 {
		s.log.Warn("ingest request rejected", "status", a.code, "reason", a.reason,
			"remote", r.RemoteAddr, "method", r.Method, "bytes", r.ContentLength)
	}
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) answer {
	if r.Method != http.MethodPost {
		return reject(http.StatusMethodNotAllowed, "", "method "+r.Method+" is not POST") // not an ingest: not counted
	}
	if !s.authorized(r) {
		return reject(http.StatusUnauthorized, resultUnauthorized, "wrong or missing credentials")
	}
	body, err := s.read(w, r)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return s.keepTooLarge(r.Context(), r.ContentLength)
	case err != nil:
		return reject(http.StatusBadRequest, resultInvalid, "body not read: "+err.Error())
	}
	e, subject, err := decodeEntry(s.cfg.Subject, body)
	var bad *audit.InvalidError
	if errors.As(err, &bad) {
		return s.keepInvalid(r.Context(), bad.Reason, body)
	}
	return s.store(r.Context(), subject, &e)
}

// decodeEntry reads one audit entry from a request body (SPEC §1) and
// returns the subject it is stored on: <prefix>.<objectType>, the object
// type made one subject token. Every error is an *audit.InvalidError.
func decodeEntry(prefix string, body []byte) (audit.Entry, string, error) {
	e, err := audit.Decode(body, 0)
	if err != nil {
		return e, "", err
	}
	return e, prefix + "." + config.SubjectToken(e.ObjectType), nil
}

func reject(code int, result, reason string) answer {
	return answer{code: code, body: map[string]string{"error": reason}, result: result, reason: reason}
}

// read reads the whole body, at most maxEntryBytes: a larger one fails
// with *http.MaxBytesError, before being read when its Content-Length says so.
func (s *Server) read(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	max := s.cfg.MaxEntryBytes
	if r.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	return io.ReadAll(http.MaxBytesReader(w, r.Body, max))
}

// store publishes the entry, unchanged, to <subject>.<objectType> and
// answers only once JetStream has acknowledged it.
func (s *Server) store(ctx context.Context, subject string, e *audit.Entry) answer {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	ack, err := s.opts.Store.PublishEntry(ctx, subject, e.Identity(), e.Raw)
	if err != nil {
		return reject(http.StatusServiceUnavailable, resultUnavailable, "audit stream unavailable: "+err.Error())
	}
	if ack.Duplicate {
		return answer{code: http.StatusOK, body: stored{"duplicate", ack.Sequence}, result: resultDuplicate}
	}
	return answer{code: http.StatusOK, body: stored{"stored", ack.Sequence}, result: resultStored}
}

type stored struct {
	Message string `json:"message"`
	Seq     uint64 `json:"seq"`
}

// keepInvalid keeps a body that is not an entry, unchanged, on
// <deadLetter.subject>._invalid: nothing TheHive sent is lost. Until it
// is kept, the answer is 503, not 400.
func (s *Server) keepInvalid(ctx context.Context, reason string, body []byte) answer {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, err := s.opts.Store.PublishDeadLetter(ctx, audit.DeadLetter{Reason: reason}, body); err != nil {
		return reject(http.StatusServiceUnavailable, resultUnavailable, "invalid audit entry ("+reason+") not kept: "+err.Error())
	}
	return reject(http.StatusBadRequest, resultInvalid, "invalid audit entry: "+reason)
}

// keepTooLarge keeps a trace of a body over maxEntryBytes, without it.
func (s *Server) keepTooLarge(ctx context.Context, length int64) answer {
	reason := fmt.Sprintf("body larger than maxEntryBytes (%d)", s.cfg.MaxEntryBytes)
	if length > 0 {
		reason = fmt.Sprintf("body of %d bytes is larger than maxEntryBytes (%d)", length, s.cfg.MaxEntryBytes)
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, err := s.opts.Store.PublishDeadLetter(ctx, audit.DeadLetter{Reason: reason, OmitBody: true}, nil); err != nil {
		return reject(http.StatusServiceUnavailable, resultUnavailable, reason+", not kept: "+err.Error())
	}
	return reject(http.StatusRequestEntityTooLarge, resultTooLarge, reason)
}

// authorized checks what the sender's auth block sends (TheHive 4's
// none | basic | bearer | key), comparing in constant time.
func (s *Server) authorized(r *http.Request) bool {
	a := s.cfg.Auth
	got := r.Header.Get("Authorization")
	switch a.Type {
	case config.AuthBasic:
		user, pass, ok := r.BasicAuth()
		return ok && same(user, a.Username)&same(pass, string(a.Password)) == 1
	case config.AuthBearer:
		scheme, token, _ := strings.Cut(got, " ")
		return strings.EqualFold(scheme, "Bearer") && same(token, string(a.Key)) == 1
	case config.AuthKey:
		return same(got, string(a.Key)) == 1
	}
	return true
}

// same compares the SHA-256 of a and b in constant time: neither the
// content nor the length of the expected value leaks through timing.
func same(a, b string) int {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:])
}

// challenge is the WWW-Authenticate of a 401 for the auth type.
func challenge(typ config.AuthType) string {
	switch typ {
	case config.AuthBasic:
		return `Basic realm="auditrelay ingest", charset="UTF-8"`
	case config.AuthKey:
		return `Key realm="auditrelay ingest"` // TheHive 4's key: the whole Authorization value
	}
	return `Bearer realm="auditrelay ingest"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
