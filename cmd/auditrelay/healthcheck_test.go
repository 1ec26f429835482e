package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: 0 on a 2xx, 1 on a 503 or nothing listening, 2 on a bad flag.
func TestHealthcheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"-url", srv.URL + "/healthz"}, exitOK},
		{[]string{"-url", srv.URL + "/readyz"}, exitFailure},
		{[]string{"-url", closed.URL + "/healthz"}, exitFailure},
		{[]string{"-nope"}, exitUsage},
	} {
		var out, errw bytes.Buffer
		e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errw, getenv: func(string) string { return "" }}
		if got := run(context.Background(), append([]string{"healthcheck"}, tc.args...), e); got != tc.want {
			t.Errorf("healthcheck %v = %d, want %d (%s)", tc.args, got, tc.want, errw.String())
		}
	}
}
