package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// TestIngestEndToEnd is the one-file set-up: TheHive 3's webhook and
// TheHive 4's endpoint point at the ingest listener (localhost and [::1]
// for its 127.0.0.1), siem is a real receiver. A POST is stored, then
// delivered to siem byte for byte; the two hops are not delivered to (they
// would post the entry back: a duplicate); /readyz covers the listener;
// the ingest metrics are served; the stream auditrelay creates keeps
// duplicates for 10 minutes.
func TestIngestEndToEnd(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	port := natstest.FreePort(t)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
auditrelay.ingest { enabled = true, listen = "127.0.0.1:%d" }
webhooks {
  thehive { url = "http://localhost:%d/" }
  siem { url = "%s/siem" }
}
notification.webhook.endpoints = [ { name = thehive4, version = 0, url = "http://[::1]:%d/thehive4", wsConfig {} } ]
`, port, port, rc.URL, port)))
	r := startRelay(t, cfg)
	ready := getReadyz(t, r.AdminAddr())
	if ready.code != http.StatusOK {
		t.Fatalf("/readyz %d %v", ready.code, ready.Reasons)
	}

	body := entry("Creation", "case", "c1", "c1", 1)
	resp, err := http.Post("http://"+r.IngestAddr()+"/", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(answer), `"stored"`) {
		t.Fatalf("POST: %d %s", resp.StatusCode, answer)
	}
	waitFor(t, 10*time.Second, "delivery to siem", func() bool { return len(rc.delivered()) == 1 })
	if got := rc.delivered()[0]; !bytes.Equal(got, []byte(body)) {
		t.Errorf("siem got %q, want the POSTed body", got)
	}

	metrics := get(t, "http://"+r.AdminAddr()+"/metrics")
	for _, want := range []string{
		`auditrelay_ingest_requests_total{result="stored"} 1`,
		`auditrelay_ingest_requests_total{result="duplicate"} 0`,
		`auditrelay_ingest_requests_total{result="unavailable"} 0`,
		`auditrelay_ingest_duration_seconds_count 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, hop := range []string{"thehive", "thehive4"} {
		if strings.Contains(metrics, `webhook="`+hop+`"`) {
			t.Errorf("the ingest hop %s has delivery series: it is delivered to", hop)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if d := st.CachedInfo().Config.Duplicates; d < audit.DuplicateWindow {
		t.Errorf("stream duplicate window %v, want at least %v", d, audit.DuplicateWindow)
	}

	r.ingest.Close() // the listener gone: not ready, and said why
	ready = getReadyz(t, r.AdminAddr())
	if ready.code != http.StatusServiceUnavailable || !strings.Contains(strings.Join(ready.Reasons, ";"), "ingest listener") {
		t.Errorf("/readyz with the listener closed: %d %v", ready.code, ready.Reasons)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
