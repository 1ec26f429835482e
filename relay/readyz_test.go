package relay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// readiness is one GET /readyz.
type readiness struct {
	code    int
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}

func getReadyz(t *testing.T, addr string) readiness {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("GET /readyz: body is not JSON: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /readyz: Content-Type %q", ct)
	}
	r.code = resp.StatusCode
	return r
}

// waitReadyz polls /readyz until it answers code.
func waitReadyz(t *testing.T, addr string, code int, what string) readiness {
	t.Helper()
	var last readiness
	waitFor(t, 20*time.Second, what, func() bool {
		last = getReadyz(t, addr)
		return last.code == code
	})
	return last
}

// TestReadyzTransitions: 503 naming NATS, the intake and the webhook while
// no NATS server listens; 200 once one starts and everything is bound; 503
// naming NATS when it goes away; 200 again when it comes back on the same
// store, and deliveries resume.
func TestReadyzTransitions(t *testing.T) {
	port, dir := natstest.FreePort(t), t.TempDir()
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, fmt.Sprintf(`
auditrelay {
  nats { url = "nats://127.0.0.1:%d", stream.maxAge = 1h }
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
}
webhooks.siem.url = "%s/siem"
`, port, rc.URL))
	r := startWith(t, cfg, Options{Version: "test", Logger: quietLog()})
	addr := r.AdminAddr()

	before := waitReadyz(t, addr, http.StatusServiceUnavailable, "/readyz to answer")
	want := []string{"NATS not connected", "intake consumer not bound", `webhook "siem": consumer not bound`}
	for _, w := range want {
		if !slices.Contains(before.Reasons, w) {
			t.Errorf("before NATS: reasons %q lack %q", before.Reasons, w)
		}
	}
	if before.Status != "not ready" {
		t.Errorf("before NATS: status %q", before.Status)
	}

	srv := natstest.StartAt(t, port, dir)
	ready := waitReadyz(t, addr, http.StatusOK, "ready once NATS listens")
	if ready.Status != "ready" || len(ready.Reasons) != 0 {
		t.Errorf("ready: %+v", ready)
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	down := waitReadyz(t, addr, http.StatusServiceUnavailable, "not ready once NATS is gone")
	if !slices.Contains(down.Reasons, "NATS not connected") {
		t.Errorf("NATS down: reasons %q lack %q", down.Reasons, "NATS not connected")
	}

	srv = natstest.StartAt(t, port, dir)
	waitReadyz(t, addr, http.StatusOK, "ready once NATS is back")
	_, js := natstest.Connect(t, srv)
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	waitFor(t, 20*time.Second, "delivery after NATS came back", func() bool { return len(rc.delivered()) == 1 })
	if got := string(rc.delivered()[0]); got != e {
		t.Errorf("delivered %s, want %s", got, e)
	}
}

// TestAdminClosesSlowHeaders: a client that opens the admin port and never
// finishes its request headers is disconnected after adminHeaderTimeout.
func TestAdminClosesSlowHeaders(t *testing.T) {
	srv := natstest.Start(t)
	s := startRelay(t, parseConfig(t, testConfig(srv, "")))
	conn, err := net.Dial("tcp", s.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(adminHeaderTimeout + 10*time.Second))
	start := time.Now()
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open %s after the first header line", time.Since(start).Round(time.Second))
	}
}
