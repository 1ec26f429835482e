package sink

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/auditrelay/auditrelay/config"
)

// Outcome is what an attempt's result means for the entry.
type Outcome int

// The outcomes of an attempt (SPEC §4).
const (
	// Delivered: a 2xx; acknowledge.
	Delivered Outcome = iota
	// Retry: try again after a backoff, until maxAttempts or maxAge.
	Retry
	// Permanent: the endpoint will never take it; dead-letter at once.
	Permanent
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	}
	return "permanent"
}

// Result is one attempt's classified result.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status code, or tls | proxy | connect | timeout when
	// there was no response: the Auditrelay-Last-Status and metric code.
	Status string
	// RetryAfter is the endpoint's Retry-After, 0 when absent.
	RetryAfter time.Duration
	Err        error
	// snippet is the start of a failed response's body, for logs and the
	// dead letter's reason.
	snippet string
	// redirect marks a 3xx that was not followed, so the reason says so.
	redirect bool
}

// permanent are the statuses that no retry can fix (SPEC §4).
var permanent = map[int]bool{400: true, 404: true, 405: true, 410: true, 413: true, 415: true, 422: true}

// Classify is the one place that decides what a response or a request error
// means: 2xx delivered; 400, 404, 405, 410, 413, 415, 422 and every 3xx
// (a redirect the client did not follow) permanent; anything else, and
// every request error, retried. now is for Retry-After given as an HTTP
// date.
func Classify(resp *http.Response, err error, now time.Time) Result {
	if err != nil {
		return Result{Outcome: Retry, Status: errorKind(err), Err: redactErr(err)}
	}
	code := resp.StatusCode
	r := Result{Status: strconv.Itoa(code)}
	switch {
	case code >= 200 && code < 300:
		r.Outcome = Delivered
	case permanent[code]:
		r.Outcome = Permanent
	case code >= 300 && code < 400:
		// The client follows 307 and 308 when followRedirects is set
		// (checkRedirect); a 3xx that reaches here was not followed and
		// never will be: 301/302/303 would lose the body.
		r.Outcome = Permanent
		r.redirect = true
	default:
		r.Outcome = Retry
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), now)
	}
	return r
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// Backoff is the wait before attempt n+1 after attempt n failed: random
// between initialBackoff and min(maxBackoff, initialBackoff·2^(n-1)) (full
// jitter above the floor), or the endpoint's Retry-After, capped at
// maxBackoff.
func Backoff(r config.Retry, n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, r.MaxBackoff)
	}
	ceil := r.MaxBackoff
	if n-1 < 62 {
		if c := r.InitialBackoff << (n - 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	if ceil <= r.InitialBackoff {
		return ceil
	}
	return r.InitialBackoff + rand.N(ceil-r.InitialBackoff+1)
}

// redactErr replaces the URL net/http puts in its errors (userinfo already
// stripped, but not the query, which may carry a token) with the redacted
// one.
func redactErr(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	return fmt.Errorf("%s %q: %w", ue.Op, config.RedactURL(ue.URL), ue.Err)
}
