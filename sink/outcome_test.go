package sink

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
)

// TestClassifyEveryStatus walks every status code from 100 to 599.
func TestClassifyEveryStatus(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for code := 100; code < 600; code++ {
		got := Classify(&http.Response{StatusCode: code, Header: http.Header{}}, nil, now)
		want := Retry
		switch {
		case code >= 200 && code < 300:
			want = Delivered
		case code == 400 || code == 404 || code == 405 || code == 410 || code == 413 || code == 415 || code == 422:
			want = Permanent
		case code >= 300 && code < 400: // a redirect the client did not follow
			want = Permanent
		}
		if got.Outcome != want || got.Status != strconv.Itoa(code) {
			t.Errorf("%d: got %v %q, want %v %q", code, got.Outcome, got.Status, want, strconv.Itoa(code))
		}
	}
}

// TestClassifyRedirects: a 3xx reaches the classifier only when the
// client did not follow it, so each is permanent, and its reason says why.
func TestClassifyRedirects(t *testing.T) {
	tests := []struct {
		code int
		want Outcome
	}{
		{http.StatusMultipleChoices, Permanent},
		{http.StatusMovedPermanently, Permanent},
		{http.StatusFound, Permanent},
		{http.StatusSeeOther, Permanent},
		{http.StatusNotModified, Permanent},
		{http.StatusTemporaryRedirect, Permanent},
		{http.StatusPermanentRedirect, Permanent},
	}
	for _, tt := range tests {
		h := http.Header{"Location": {"https://other.example.org/new"}, "Retry-After": {"5"}}
		got := Classify(&http.Response{StatusCode: tt.code, Header: h}, nil, time.Now())
		if got.Outcome != tt.want || got.Status != strconv.Itoa(tt.code) || got.RetryAfter != 0 {
			t.Errorf("%d: got %v %q retry-after %v, want %v", tt.code, got.Outcome, got.Status, got.RetryAfter, tt.want)
		}
		want := "HTTP " + strconv.Itoa(tt.code) + " (redirect not followed: only 307 and 308 are, with followRedirects)"
		if r := got.reason(); r != want {
			t.Errorf("%d: reason %q, want %q", tt.code, r, want)
		}
	}
}

// TestClassifyErrors: a request error is always retried, with its kind as
// the status. The errors are real ones, from real sockets.
func TestClassifyErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	client := &http.Client{Transport: &http.Transport{}}
	_, refused := client.Post("http://"+closed+"/?token=s3cret", "application/json", nil)
	if got := Classify(nil, refused, time.Now()).Err.Error(); strings.Contains(got, "s3cret") {
		t.Errorf("the error shows the URL's query: %s", got)
	}

	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+hang.Addr().String()+"/", nil)
	_, timeout := client.Do(req)

	for _, tc := range []struct {
		name  string
		err   error
		want  string
		cause error
	}{
		{"connection refused", refused, "connect", syscall.ECONNREFUSED},
		{"deadline", timeout, "timeout", context.DeadlineExceeded},
	} {
		if tc.err == nil {
			t.Fatalf("%s: the request did not fail", tc.name)
		}
		got := Classify(nil, tc.err, time.Now())
		if got.Outcome != Retry || got.Status != tc.want || !errors.Is(got.Err, tc.cause) {
			t.Errorf("%s: got %v %q (%v), want retry %q", tc.name, got.Outcome, got.Status, got.Err, tc.want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"5", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {tc.header}}}
		if got := Classify(resp, nil, now).RetryAfter; got != tc.want {
			t.Errorf("Retry-After %q: got %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestBackoff: the wait before attempt n+1 lies between initialBackoff and
// min(maxBackoff, initialBackoff·2^(n-1)); Retry-After wins, capped.
func TestBackoff(t *testing.T) {
	r := config.Retry{InitialBackoff: time.Second, MaxBackoff: 10 * time.Second}
	for n := 1; n <= 70; n++ {
		ceil := r.MaxBackoff
		if n <= 4 {
			ceil = r.InitialBackoff << (n - 1)
		}
		for range 200 {
			if got := Backoff(r, n, 0); got < r.InitialBackoff || got > ceil {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, got, r.InitialBackoff, ceil)
			}
		}
	}
	if got := Backoff(r, 1, 3*time.Second); got != 3*time.Second {
		t.Errorf("Retry-After 3s: got %v", got)
	}
	if got := Backoff(r, 1, time.Hour); got != r.MaxBackoff {
		t.Errorf("Retry-After 1h: got %v, want the cap %v", got, r.MaxBackoff)
	}
}

// TestBackoffJitters: waits are spread, not all the ceiling.
func TestBackoffJitters(t *testing.T) {
	r := config.Retry{InitialBackoff: time.Millisecond, MaxBackoff: time.Second}
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[Backoff(r, 8, 0)] = true
	}
	if len(seen) < 10 {
		t.Errorf("50 backoffs took only %d distinct values", len(seen))
	}
}
