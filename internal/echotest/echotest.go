// Package echotest is test support only: an HTTP endpoint that answers
// every request with 400 and the request itself (path, query, every
// header, the body), as a receiver's error page may, for the tests that
// prove no secret leaks through a response quoted in a reason.
package echotest

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// Handler answers 400 with pad bytes of padding, then the request as it
// arrived: path, query, every header (sorted by name) and the body, cut
// to bodyMax bytes when bodyMax > 0.
func Handler(pad, bodyMax int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bodyMax > 0 && len(body) > bodyMax {
			body = body[:bodyMax]
		}
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "%spath=%s query=%s", strings.Repeat("x", pad), r.URL.EscapedPath(), r.URL.RawQuery)
		for _, k := range slices.Sorted(maps.Keys(r.Header)) {
			fmt.Fprintf(w, " %s: %s", k, strings.Join(r.Header[k], ","))
		}
		fmt.Fprintf(w, " body=%s", body)
	}
}

// Server starts Handler(pad, bodyMax) on loopback; it closes with the test.
func Server(t testing.TB, pad, bodyMax int) *httptest.Server {
	srv := httptest.NewServer(Handler(pad, bodyMax))
	t.Cleanup(srv.Close)
	return srv
}
