package sink

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/echotest"
)

// Secrets of the echo tests; each distinctive, so a leak cannot hide.
const (
	leakPathToken = "pathS3CRETtoken0123456789"
	leakPath      = "/services/T0LEAK0001/B0LEAK0002/" + leakPathToken
	leakQuery     = "query-S3CRET-1001"
	leakURLPass   = "urlpass-S3CRET-1002"
	leakBearer    = "bearer-S3CRET-1003"
	leakHeader    = "header-S3CRET-1004"
	leakBasicPass = "basic-S3CRET-1005"
	leakProxyPass = "proxy-S3CRET-1006"
)

// attemptOnce makes one attempt of a small entry with a webhook built
// from wh.
func attemptOnce(t *testing.T, wh *config.Webhook) Result {
	t.Helper()
	w, err := New(*wh, Options{Stream: "THEHIVE_AUDIT", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w.attempt(t.Context(), "THEHIVE_AUDIT.siem.1", []byte(`{"x":1}`), 1)
}

// leaks are the secrets of echoWebhook and the forms they travel in.
func leaks() []string {
	return []string{leakPath, leakPathToken, "T0LEAK0001", "B0LEAK0002", leakQuery, leakURLPass, leakBearer,
		leakHeader, leakBasicPass, base64.StdEncoding.EncodeToString([]byte("relay:" + leakURLPass)),
		base64.StdEncoding.EncodeToString([]byte(leakHeader))}
}

// echoWebhook carries a secret in the URL's userinfo, path and query, a
// bearer key and a configured header.
func echoWebhook(srv *httptest.Server) *config.Webhook {
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("relay", leakURLPass)
	wh := testWebhook(u.String() + leakPath + "?token=" + leakQuery + "&tenant=soc")
	wh.Auth = config.Auth{Type: "bearer", Key: leakBearer}
	wh.Headers = map[string]string{"X-Api-Key": leakHeader}
	return wh
}

// TestEchoedRequestScrubbed: an endpoint that echoes the whole request in
// its error body shows none of the webhook's secrets in the result, its
// reason or its error — also when a secret straddles the snippet's cut.
func TestEchoedRequestScrubbed(t *testing.T) {
	for _, pad := range []int{0, snippetLen - 20} {
		t.Run(fmt.Sprintf("pad=%d", pad), func(t *testing.T) {
			srv := echotest.Server(t, pad, 0)
			wh := echoWebhook(srv)
			res := attemptOnce(t, wh)
			if res.Outcome != Permanent || res.Status != "400" {
				t.Fatalf("got %v %q, want permanent 400", res.Outcome, res.Status)
			}
			shown := res.reason()
			if pad == 0 && !strings.Contains(shown, "path=**** query=****") {
				t.Errorf("reason %q: want path and query scrubbed to ****", shown)
			}
			if len(res.snippet) > snippetLen {
				t.Errorf("snippet of %d bytes, want at most %d", len(res.snippet), snippetLen)
			}
			assertNoLeak(t, shown, leaks())
		})
	}
}

// TestGzippedErrorPageScrubbed: auditrelay asks for no compression, yet a
// receiver may gzip its error page all the same. The reason quotes the
// page's text, scrubbed, never the compressed bytes (in which the scrubbing
// could not find an echoed secret); a body that says gzip and is not is
// quoted as a note saying so.
func TestGzippedErrorPageScrubbed(t *testing.T) {
	var (
		mu     sync.Mutex
		accept []string
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		accept = append(accept, r.Header.Values("Accept-Encoding")...)
		mu.Unlock()
		var page bytes.Buffer
		rec := httptest.NewRecorder()
		echotest.Handler(0, 0)(rec, r)
		w.Header().Set("Content-Encoding", "gzip")
		w.WriteHeader(rec.Code)
		if r.URL.Query().Get("tenant") == "broken" {
			_, _ = w.Write([]byte("not gzip " + leakBearer))
			return
		}
		zw := gzip.NewWriter(&page)
		_, _ = zw.Write(rec.Body.Bytes())
		_ = zw.Close()
		_, _ = w.Write(page.Bytes())
	}))
	t.Cleanup(srv.Close)
	for _, tenant := range []string{"soc", "broken"} {
		t.Run(tenant, func(t *testing.T) {
			wh := echoWebhook(srv)
			wh.URL = strings.Replace(wh.URL, "tenant=soc", "tenant="+tenant, 1)
			res := attemptOnce(t, wh)
			if res.Outcome != Permanent || res.Status != "400" {
				t.Fatalf("got %v %q, want permanent 400", res.Outcome, res.Status)
			}
			mu.Lock()
			if len(accept) != 0 {
				t.Errorf("request carried Accept-Encoding %q, want none", accept)
			}
			mu.Unlock()
			shown := res.reason()
			want := "path=**** query=****"
			if tenant == "broken" {
				want = "(a gzip body that does not decompress)"
			}
			if !strings.Contains(shown, want) {
				t.Errorf("reason %q: want it to quote %q", shown, want)
			}
			assertNoLeak(t, shown, leaks())
		})
	}
}

// assertNoLeak fails when shown holds any 10 consecutive bytes of a
// secret: a secret shown in part (cut at the snippet's end) leaks too.
func assertNoLeak(t *testing.T, shown string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		n := min(10, len(s))
		for i := 0; i+n <= len(s); i++ {
			if strings.Contains(shown, s[i:i+n]) {
				t.Errorf("%q shows %q of secret %q", shown, s[i:i+n], s)
				break
			}
		}
	}
}

// TestRequestErrorScrubbed: the error net/http gives for a refused
// connection names the URL; the reason shows it as scheme://host:port/****.
func TestRequestErrorScrubbed(t *testing.T) {
	srv := echotest.Server(t, 0, 0)
	wh := echoWebhook(srv)
	srv.Close() // nothing listens there now: connection refused
	res := attemptOnce(t, wh)
	want := config.RedactURL(srv.URL)
	if res.Status != kindConnect || !strings.Contains(res.reason(), `Post "`+want+`"`) {
		t.Errorf("got %q, reason %q; want connect naming %s", res.Status, res.reason(), want)
	}
	assertNoLeak(t, res.reason(), leaks())
}

// TestSecretsOf: every configured secret, its Basic and base64 forms, the
// URL's path, path tokens and query values, longest first; words of the
// path and values under 4 characters are not secrets.
func TestSecretsOf(t *testing.T) {
	wh := testWebhook("https://relay:" + leakURLPass + "@h.example.org/hooks/services/T0LEAK0001/" + leakPathToken + "?token=" + leakQuery + "&n=1")
	wh.Auth = config.Auth{Type: "basic", Username: "soc", Password: leakBasicPass}
	wh.Headers = map[string]string{"X-Api-Key": leakHeader, "X-Short": "ab"}
	wh.Signing.Secrets = []config.Secret{signSecretA}
	wh.WS.Proxy = config.Proxy{Host: "127.0.0.1", Port: 3128, User: "px", Password: leakProxyPass}
	got := secretsOf(wh)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, want := range []string{
		leakBasicPass, b64("soc:" + leakBasicPass), leakHeader, b64(leakHeader), signSecretA,
		leakProxyPass, b64("px:" + leakProxyPass), leakURLPass, b64("relay:" + leakURLPass),
		"/hooks/services/T0LEAK0001/" + leakPathToken, "T0LEAK0001", leakPathToken, leakQuery,
	} {
		if !slices.Contains(got, want) {
			t.Errorf("secretsOf lacks %q", want)
		}
	}
	for _, not := range []string{"hooks", "services", "ab", "1"} {
		if slices.Contains(got, not) {
			t.Errorf("secretsOf has %q", not)
		}
	}
	if !slices.IsSortedFunc(got, func(a, b string) int { return len(b) - len(a) }) {
		t.Errorf("secretsOf not longest first: %q", got)
	}
}

// TestRedirectCarriesNoURLSecret: a webhook whose URL carries secrets in
// its path and query is redirected (307) to another host, and to its own.
// The request after the redirect never names the URL redirected from
// (net/http would send it as Referer); the other host gets no
// Authorization, the same host does. A Referer set in the webhook's
// headers goes on as it is.
func TestRedirectCarriesNoURLSecret(t *testing.T) {
	var (
		mu  sync.Mutex
		got []http.Header
	)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/new" {
			mu.Lock()
			got = append(got, r.Header.Clone())
			mu.Unlock()
			return
		}
		to := "/new"
		if r.URL.Query().Get("hop") == "other" {
			to = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/new"
		}
		w.Header().Set("Location", to)
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		hop, referer string
		auth         bool
	}{
		{hop: "other"},
		{hop: "same", auth: true},
		{hop: "other", referer: "https://thehive.example/"},
	} {
		t.Run(tc.hop+"/referer="+tc.referer, func(t *testing.T) {
			wh := echoWebhook(srv)
			wh.URL += "&hop=" + tc.hop
			if tc.referer != "" {
				wh.Headers["Referer"] = tc.referer
			}
			mu.Lock()
			got = nil
			mu.Unlock()
			res := attemptOnce(t, wh)
			mu.Lock()
			defer mu.Unlock()
			if res.Outcome != Delivered || len(got) != 1 {
				t.Fatalf("got %v %q %v and %d request(s) at /new, want delivered after one redirect", res.Outcome, res.Status, res.Err, len(got))
			}
			if ref := got[0].Get("Referer"); ref != tc.referer {
				t.Errorf("Referer after the redirect: %q, want %q", ref, tc.referer)
			}
			if auth := got[0].Get("Authorization"); (auth != "") != tc.auth {
				t.Errorf("Authorization after a redirect to the %s host: %q, want it sent: %t", tc.hop, auth, tc.auth)
			}
		})
	}
}
