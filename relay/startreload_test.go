package relay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// TestReloadWhileNATSUnreachableStartsOnce: a SIGHUP while the sidecar
// still waits for NATS changes the webhook set that it starts once NATS
// is there; it does not start the webhook a second time. A later reload
// to another URL then leaves nothing delivering to the old one.
func TestReloadWhileNATSUnreachableStartsOnce(t *testing.T) {
	rc := newReceiver(t, nil)
	port := natstest.FreePort(t)
	conf := func(path string) string {
		return fmt.Sprintf(`
auditrelay { nats { url = "nats://127.0.0.1:%d", stream.maxAge = 1h }, admin.listen = "127.0.0.1:0", shutdownTimeout = 5s }
webhooks.a { url = "%s/%s", delivery.orderBy = none, delivery.start = all }
`, port, rc.URL, path)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := New(parseConfig(t, conf("one")), Options{Version: "test", Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- r.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })

	// Once connecting: the sidecar is waiting for NATS.
	waitFor(t, 10*time.Second, "connecting", func() bool { return r.source() != nil })
	if err := r.Reload(parseConfig(t, conf("two"))); err != nil {
		t.Fatalf("reload while NATS is unreachable: %v", err)
	}
	srv := natstest.StartAt(t, port, t.TempDir())
	_, js := natstest.Connect(t, srv)
	waitFor(t, 30*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })
	publish(t, js, "thehive.audit.case", entry("Creation", "case", "c0", "c0", 0))
	waitFor(t, 10*time.Second, "the entry at two", func() bool { return len(rc.bodies("/two")) == 1 })

	if err := r.Reload(parseConfig(t, conf("three"))); err != nil {
		t.Fatal(err)
	}
	var more []string
	for i := 1; i <= 40; i++ {
		more = append(more, entry("Update", "case", fmt.Sprintf("c%d", i), fmt.Sprintf("c%d", i), i))
	}
	// Room for a webhook started twice to bind its second consumer (it
	// retries binding every 250 ms from the start): it would then share
	// what comes next.
	time.Sleep(2 * time.Second)
	publish(t, js, "thehive.audit.case", more...)
	waitFor(t, 20*time.Second, "every later entry somewhere", func() bool {
		return len(rc.bodies("/two"))+len(rc.bodies("/three")) >= 41
	})
	if n := len(rc.bodies("/one")); n != 0 {
		t.Errorf("%d requests to the URL replaced before NATS came", n)
	}
	if got := rc.bodies("/two"); len(got) != 1 {
		t.Errorf("%d requests to the URL replaced by the second reload, want the 1 before it:\n%s", len(got), joinLines(got))
	}
	if got := len(rc.bodies("/three")); got != 40 {
		t.Errorf("%d requests to the current URL, want 40", got)
	}
}
