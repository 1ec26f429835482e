package relay

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/audit"
)

// TestRedirectsDeliveredOrDeadLettered runs one sidecar with a webhook per
// redirect code (301, 302, 303, 307, 308) and followRedirects setting,
// each pointed at /<name>/old, which answers its code with Location
// /<name>/new. Only 307 and 308 with followRedirects reach /new, as a POST
// carrying the entry byte for byte; every other one is dead-lettered after
// one attempt with the redirect's status, and its /new is never asked.
func TestRedirectsDeliveredOrDeadLettered(t *testing.T) {
	srv, js := natsServer(t)
	var mu sync.Mutex
	arrived := map[string]string{} // webhook name → "METHOD body" at /new
	codes := map[string]int{}
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		mu.Lock()
		defer mu.Unlock()
		if rest == "old" {
			w.Header().Set("Location", "/"+name+"/new")
			w.WriteHeader(codes[name])
			return
		}
		arrived[name] = r.Method + " " + string(body)
	}))
	t.Cleanup(endpoint.Close)

	var hooks strings.Builder
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, follow := range []bool{true, false} {
			name := fmt.Sprintf("r%d-%t", code, follow)
			codes[name] = code
			fmt.Fprintf(&hooks, "%q { url = \"%s/%s/old\", ws.followRedirects = %t }\n", name, endpoint.URL, name, follow)
		}
	}
	startRelay(t, parseConfig(t, testConfig(srv, "webhooks {\n"+hooks.String()+"}")))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)

	for name, code := range codes {
		if follow := strings.HasSuffix(name, "true"); follow && (code == 307 || code == 308) {
			waitFor(t, 10*time.Second, name+" delivered at /new", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return arrived[name] != ""
			})
			mu.Lock()
			if got := arrived[name]; got != "POST "+e {
				t.Errorf("%s: /new got %q, want POST with the entry", name, got)
			}
			mu.Unlock()
			continue
		}
		h := readDeadLetters(t, js, "auditrelay.deadletter."+name, 1)[e]
		if h == nil {
			t.Errorf("%s: entry not dead-lettered unchanged", name)
			continue
		}
		if h.Get(audit.HeaderLastStatus) != strconv.Itoa(code) || h.Get(audit.HeaderAttempts) != "1" {
			t.Errorf("%s: last status %q after %q attempts, want %d after 1", name, h.Get(audit.HeaderLastStatus), h.Get(audit.HeaderAttempts), code)
		}
		if r := h.Get(audit.HeaderReason); !strings.Contains(r, "redirect not followed") {
			t.Errorf("%s: reason %q", name, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for name, got := range arrived {
		if c := codes[name]; c != 307 && c != 308 || strings.HasSuffix(name, "false") {
			t.Errorf("%s: /new was asked (%q)", name, got)
		}
	}
}
