package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// TestDeadLetterStoredOnceAcrossNATSRestart: NATS stops while a dead letter
// is being stored; the client buffers every retry of the store until the
// server is back, and all of them reach it then. The dead letter is stored
// once, and the entry acknowledged.
func TestDeadLetterStoredOnceAcrossNATSRestart(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartAt(t, -1, dir)
	port := natstest.Port(srv)
	_, js := natstest.Connect(t, srv)
	asked, release := make(chan struct{}), make(chan struct{})
	rc := newReceiver(t, func(_ *request, n int) int {
		if n == 0 {
			close(asked)
			<-release
		}
		return http.StatusBadRequest
	})
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := startWith(t, parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.siem { url = "%s/siem" }`, rc.URL))),
		Options{Version: "test", Logger: log, Registry: prometheus.NewRegistry()})
	waitFor(t, 10*time.Second, "ready", func() bool { return len(s.NotReady()) == 0 })
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "a", "a", 0))
	select {
	case <-asked:
	case <-time.After(10 * time.Second):
		t.Fatal("the entry was not sent within 10s")
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	close(release)
	waitFor(t, 30*time.Second, "two failed stores of the dead letter", func() bool {
		return strings.Count(logs.String(), "dead letter not stored yet") >= 2
	})
	srv = natstest.StartAt(t, port, dir)
	_, js = natstest.Connect(t, srv)
	waitFor(t, 30*time.Second, "the entry acknowledged", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := js.Consumer(ctx, "THEHIVE_AUDIT", audit.ConsumerName("auditrelay", "siem"))
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.AckFloor.Stream >= 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, audit.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("%d dead letters of one entry, want 1", n)
	}
	if d := st.CachedInfo().Config.Duplicates; d != audit.DeadLetterDuplicates {
		t.Errorf("dead-letter stream duplicate window %v, want %v", d, audit.DeadLetterDuplicates)
	}
	if len(rc.requests()) != 1 {
		t.Errorf("%d requests, want 1: the dead-lettered entry was sent again", len(rc.requests()))
	}
}
