package relay

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// request is what a receiver got.
type request struct {
	path    string
	header  http.Header
	body    []byte
	started time.Time
	code    int // the status the receiver answered
}

// receiver is a real HTTP endpoint that records every request and answers
// with what respond says (200 when nil).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	got     []request
	respond func(r *request, n int) int
}

func newReceiver(t *testing.T, respond func(r *request, n int) int) *receiver {
	rc := &receiver{respond: respond}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{path: r.URL.Path, header: r.Header.Clone(), body: body, started: time.Now()}
		rc.mu.Lock()
		n := len(rc.got)
		rc.got = append(rc.got, req)
		respond := rc.respond
		rc.mu.Unlock()
		code := http.StatusOK
		if respond != nil {
			code = respond(&req, n)
		}
		rc.mu.Lock()
		rc.got[n].code = code
		rc.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

// requests returns a copy of what was received.
func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.got...)
}

// bodies returns the bodies of every request to path, in arrival order.
func (rc *receiver) bodies(path string) [][]byte {
	var out [][]byte
	for _, r := range rc.requests() {
		if r.path == path {
			out = append(out, r.body)
		}
	}
	return out
}

// delivered returns the bodies of the requests answered 2xx, in order.
func (rc *receiver) delivered() [][]byte {
	var out [][]byte
	for _, r := range rc.requests() {
		if r.code >= 200 && r.code < 300 {
			out = append(out, r.body)
		}
	}
	return out
}

// waitFor polls cond every 20ms until it holds or the limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parseConfig parses a test config, failing the test on any problem.
func parseConfig(t *testing.T, hocon string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(hocon), "")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, hocon)
	}
	return cfg
}

// testConfig is a sidecar config against srv with the given webhooks block.
func testConfig(srv *server.Server, webhooks string) string {
	return fmt.Sprintf(`
auditrelay {
  nats { url = "%s", stream.maxAge = 1h }
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
}
%s
`, srv.ClientURL(), webhooks)
}

// started is a running sidecar in the test process.
type started struct {
	*Relay
	cancel context.CancelFunc
	done   chan error
}

// startRelay runs a sidecar until the test ends (or stop), and waits until
// it is ready.
func startRelay(t *testing.T, cfg *config.Config) *started {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := New(cfg, Options{Version: "test", Logger: log, Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &started{Relay: r, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- r.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	waitFor(t, 10*time.Second, "ready", func() bool { return len(r.NotReady()) == 0 })
	return s
}

// stop shuts the sidecar down as SIGTERM would and waits for Run.
func (s *started) stop(t *testing.T) {
	t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		s.done <- nil // later stops return at once
	case <-time.After(20 * time.Second):
		t.Fatal("sidecar did not stop within 20s")
	}
}

// publish publishes each entry and waits for JetStream to store it.
func publish(t *testing.T, js jetstream.JetStream, subject string, entries ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, e := range entries {
		if _, err := js.Publish(ctx, subject, []byte(e)); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// entry is a TheHive 3 style entry with the given root and object ids.
func entry(op, objectType, id, root string, n int) string {
	return fmt.Sprintf(`{"operation":%q,"objectType":%q,"objectId":%q,"rootId":%q,"base":true,"startDate":1505476659427,"requestId":"req-%d","details":{"title":"entry %d"},"object":{"_type":%q,"title":"t","createdBy":"admin"}}`,
		op, objectType, id, root, n, n, objectType)
}

func natsServer(t *testing.T) (*server.Server, jetstream.JetStream) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	return srv, js
}

func joinLines(b [][]byte) string {
	s := make([]string, len(b))
	for i := range b {
		s[i] = string(b[i])
	}
	return strings.Join(s, "\n")
}
