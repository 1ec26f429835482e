package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/internal/natstest"
	"github.com/auditrelay/auditrelay/sink"
)

// binary is auditrelay built once for the tests that need a real process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "auditrelay-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "auditrelay")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// recorder records deliveries: body → the webhook-ids it came with. A
// request is recorded when it arrives, then answered 200 after delay (or,
// while hang is set, not before the test ends): a process killed meanwhile
// has had it delivered without acknowledging it.
type recorder struct {
	*httptest.Server
	mu       sync.Mutex
	ids      map[string][]string
	total    int
	inFlight int
	after    int // requests that arrived after stopped was set
	stopped  bool
	delay    time.Duration
	hang     chan struct{} // non-nil: requests wait on it
}

func newRecorder(t *testing.T, delay time.Duration) *recorder {
	s := &recorder{ids: map[string][]string{}, delay: delay}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.URL.Path + " " + string(body)
		s.mu.Lock()
		s.ids[key] = append(s.ids[key], r.Header.Get("webhook-id"))
		s.total++
		s.inFlight++
		if s.stopped {
			s.after++
		}
		hang := s.hang
		s.mu.Unlock()
		defer func() { s.mu.Lock(); s.inFlight--; s.mu.Unlock() }()
		if hang != nil {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		time.Sleep(s.delay)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recorder) unique() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (s *recorder) requestsInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// markStopped notes that the sidecar has exited: a request arriving after
// it came from no one.
func (s *recorder) markStopped() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// checkDuplicates: a body delivered more than once came with one webhook-id.
func (s *recorder) checkDuplicates(t *testing.T) (dups int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for body, ids := range s.ids {
		for _, id := range ids[1:] {
			if id != ids[0] {
				t.Errorf("duplicate of %.60s with webhook-id %q, first was %q", body, id, ids[0])
			}
		}
		dups += len(ids) - 1
	}
	return dups
}

// checkIDs: every delivery of entries[i] (published i-th, so stream
// sequence i+1) to path came with the webhook-id SPEC §4 gives it.
func (s *recorder) checkIDs(t *testing.T, path, webhook string, entries []string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range entries {
		want := sink.WebhookID("THEHIVE_AUDIT", webhook, uint64(i+1), uint64(i+1))
		for _, id := range s.ids[path+" "+e] {
			if id != want {
				t.Fatalf("%s entry %d came with webhook-id %q, want %q", path, i, id, want)
			}
		}
	}
}

// sidecar is a real auditrelay process. Its admin listener is on port 0:
// admin is the address it logged at start.
type sidecar struct {
	cmd    *exec.Cmd
	admin  string
	start  string // the line it logged at start
	logged <-chan string
	done   chan error
}

func writeConfig(t *testing.T, srv *server.Server, admin, webhooks string) string {
	t.Helper()
	return writeConfigURL(t, srv.ClientURL(), admin, "", webhooks)
}

func startSidecar(t *testing.T, file string) *sidecar {
	t.Helper()
	return startProcess(t, exec.Command(binary, "run", "-config", file))
}

// startSidecarEnv is startSidecar with the child's environment.
func startSidecarEnv(t *testing.T, file string, env []string) *sidecar {
	t.Helper()
	cmd := exec.Command(binary, "run", "-config", file)
	cmd.Env = env
	return startProcess(t, cmd)
}

// environWithout is this process's environment without the variables
// named.
func environWithout(names ...string) []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.Contains(names, name)
	})
}

// startProcess starts a sidecar's command, and waits for it to be ready.
// Its log goes to the test log, and to cmd.Stderr as well when that is
// set.
func startProcess(t *testing.T, cmd *exec.Cmd) *sidecar {
	t.Helper()
	pw := newPrefixWriter(t)
	if cmd.Stderr != nil {
		cmd.Stderr = io.MultiWriter(cmd.Stderr, pw)
	} else {
		cmd.Stderr = pw
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cmd: cmd, logged: pw.start, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	t.Cleanup(func() { s.kill() })
	s.waitReady(t)
	return s
}
func (s *sidecar) waitReady(t *testing.T) {
	t.Helper()
	select {
	case s.start = <-s.logged:
		s.admin = adminLogged.FindStringSubmatch(s.start)[1]
	case <-time.After(15 * time.Second):
		t.Fatal("sidecar did not log its admin address within 15s")
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + s.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("sidecar not ready within 15s")
}
func (s *sidecar) kill() {
	if s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		<-s.done
		s.done <- nil
	}
}

// prefixWriter sends the child's log to the test log, and the line it
// logs at start, with its admin address, to start.
type prefixWriter struct {
	t     *testing.T
	start chan string
}

func newPrefixWriter(t *testing.T) *prefixWriter {
	return &prefixWriter{t: t, start: make(chan string, 1)}
}

var adminLogged = regexp.MustCompile(`auditrelay starting[^\n]*admin=([^\s"]+)[^\n]*`)

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("sidecar: %s", p)
	if m := adminLogged.Find(p); m != nil {
		select {
		case w.start <- string(m):
		default:
		}
	}
	return len(p), nil
}

// anyPort is an admin listen address on a port the system picks: the
// sidecar logs the one it got (no port is reserved and then raced for).
const anyPort = "127.0.0.1:0"

func publishAll(t testing.TB, js jetstream.JetStream, entries []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var futures []jetstream.PubAckFuture
	for _, e := range entries {
		f, err := js.PublishAsync("thehive.audit.case", []byte(e))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	if err := wait(ctx, futures); err != nil {
		t.Fatal(err)
	}
}

func entries(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(`{"operation":"Update","objectType":"case_task","objectId":"t%d","rootId":"r%d","startDate":%d,"details":{"status":"InProgress"}}`, i, i%50, 1700000000000+i)
	}
	return out
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSIGKILLMidStreamLosesNothing kills the sidecar process with SIGKILL
// while thousands of entries stream, with requests in flight (delivered to
// the endpoint, not yet acknowledged), restarts it, and finds every entry
// delivered to both webhooks within 30 s of the restart becoming ready
// (SPEC §5); the in-flight ones come again, with their own webhook-id.
func TestSIGKILLMidStreamLosesNothing(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newRecorder(t, time.Millisecond)
	admin := anyPort
	file := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks { a { url = "%s/a" }, b { url = "%s/b", delivery.orderBy = none } }`, rc.URL, rc.URL))
	s := startSidecar(t, file)

	all := entries(3000)
	publishAll(t, js, all)
	waitUntil(t, 60*time.Second, "some deliveries", func() bool { return rc.unique() >= 1000 })
	// From now on every request hangs: the kill finds some delivered and
	// unacknowledged, which must come again.
	rc.mu.Lock()
	rc.hang = make(chan struct{})
	rc.mu.Unlock()
	waitUntil(t, 10*time.Second, "requests in flight", func() bool { return rc.requestsInFlight() > 0 })
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil
	rc.mu.Lock()
	close(rc.hang)
	rc.hang = nil
	rc.mu.Unlock()
	got := rc.unique()
	if got >= 2*len(all) {
		t.Fatalf("everything was delivered (%d) before the kill; the test proves nothing", got)
	}
	t.Logf("killed with %d of %d deliveries made", got, 2*len(all))

	startSidecar(t, file)
	ready := time.Now()
	waitUntil(t, 30*time.Second, "every entry at both webhooks within 30 s of ready (SPEC §5)", func() bool { return rc.unique() == 2*len(all) })
	t.Logf("all delivered %v after ready", time.Since(ready).Round(time.Millisecond))
	dups := rc.checkDuplicates(t)
	if dups == 0 {
		t.Fatal("no entry came twice, although requests were in flight at the kill: they were lost or the recorder missed them")
	}
	rc.checkIDs(t, "/a", "a", all)
	rc.checkIDs(t, "/b", "b", all)
	t.Logf("%d duplicates after the crash, each with its original webhook-id", dups)
}

// TestSIGTERMDrainsAndExitsZero: SIGTERM mid-stream stops the sidecar with
// exit 0 within shutdownTimeout, the requests in flight finished first
// (none arrives after the exit); what it had not started is handed back,
// so a restart delivers it at once, well before an ack expiry (AckWait,
// 20 s) could have brought it back.
func TestSIGTERMDrainsAndExitsZero(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newRecorder(t, 20*time.Millisecond)
	admin := anyPort
	file := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks.a { url = "%s/a", delivery.maxInFlight = 4 }`, rc.URL))
	s := startSidecar(t, file)
	all := entries(400)
	publishAll(t, js, all)
	waitUntil(t, 30*time.Second, "some deliveries", func() bool { return rc.unique() >= 50 })

	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExitZero(t, 15*time.Second, "SIGTERM (shutdownTimeout is 10s)")
	rc.markStopped()
	if n := rc.requestsInFlight(); n != 0 {
		t.Fatalf("%d requests still open after the exit: in-flight work was abandoned", n)
	}
	delivered := rc.unique()
	t.Logf("stopped in %v with %d of %d delivered", time.Since(start), delivered, len(all))
	if delivered == len(all) {
		t.Fatal("everything was delivered before SIGTERM took effect; the test proves nothing")
	}
	if dups := rc.checkDuplicates(t); dups != 0 {
		t.Fatalf("%d entries delivered twice before the restart", dups)
	}
	rc.mu.Lock()
	rc.stopped = false
	rc.mu.Unlock()
	startSidecar(t, file)
	waitUntil(t, 10*time.Second, "every entry, handed back, soon after the restart", func() bool { return rc.unique() == len(all) })
	if dups := rc.checkDuplicates(t); dups != 0 {
		t.Errorf("%d duplicates: the drain delivered entries it then handed back", dups)
	}
	rc.checkIDs(t, "/a", "a", all)
}

// TestSIGTERMGraceExpires: an endpoint that hangs during shutdown holds the
// sidecar no longer than shutdownTimeout: it exits 0, hands the hung
// entries back, and a restart delivers them at once.
func TestSIGTERMGraceExpires(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newRecorder(t, 0)
	admin := anyPort
	file := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks.a { url = "%s/a", delivery.maxInFlight = 4 }`, rc.URL))
	file = withShutdownTimeout(t, file, "2s")
	s := startSidecar(t, file)
	all := entries(20)
	rc.mu.Lock()
	rc.hang = make(chan struct{})
	rc.mu.Unlock()
	publishAll(t, js, all)
	waitUntil(t, 10*time.Second, "four requests hanging", func() bool { return rc.requestsInFlight() == 4 })

	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExitZero(t, 12*time.Second, "SIGTERM with requests hanging (shutdownTimeout 2s, request timeout 30s)")
	took := time.Since(start)
	t.Logf("stopped %v after SIGTERM", took)
	rc.mu.Lock()
	close(rc.hang)
	rc.hang = nil
	rc.mu.Unlock()
	startSidecar(t, file)
	waitUntil(t, 10*time.Second, "every entry soon after the restart (the hung ones handed back)", func() bool { return rc.unique() == len(all) })
}

// withShutdownTimeout rewrites a config written by writeConfig with
// another shutdownTimeout.
func withShutdownTimeout(t *testing.T, file, d string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(b), "shutdownTimeout = 10s", "shutdownTimeout = "+d, 1)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// waitExitZero waits for the process to exit 0.
func (s *sidecar) waitExitZero(t *testing.T, limit time.Duration, after string) {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- nil
		if err != nil {
			t.Fatalf("exit after %s: %v, want 0", after, err)
		}
	case <-time.After(limit):
		t.Fatalf("no exit within %v of %s", limit, after)
	}
}

// TestSIGHUPReloads: SIGHUP to the process adds a webhook from the edited
// file; a broken file is rejected and the process keeps delivering.
func TestSIGHUPReloads(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	rc := newRecorder(t, 0)
	admin := anyPort
	file := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks.a { url = "%s/a" }`, rc.URL))
	s := startSidecar(t, file)
	publishAll(t, js, entries(10))
	waitUntil(t, 10*time.Second, "a", func() bool { return rc.unique() == 10 })

	edited := writeConfig(t, srv, admin, fmt.Sprintf(`webhooks { a { url = "%s/a" }, b { url = "%s/b", delivery.start = all } }`, rc.URL, rc.URL))
	rename(t, edited, file)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "b after SIGHUP", func() bool { return rc.unique() == 20 })

	broken := writeConfig(t, srv, admin, `webhooks.a { url = "not a url" }`)
	rename(t, broken, file)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "the broken file rejected", func() bool {
		return containsLine(scrape(t, s.admin), `auditrelay_config_reloads_total{result="failure"} 1`)
	})
	more := entries(20)[10:]
	publishAll(t, js, more)
	waitUntil(t, 10*time.Second, "both still delivering", func() bool { return rc.unique() == 40 })
	if body := scrape(t, s.admin); !containsLine(body, `auditrelay_config_reloads_total{result="failure"} 1`) ||
		!containsLine(body, `auditrelay_config_reloads_total{result="success"} 1`) {
		t.Errorf("reload counters wrong:\n%s", grep(body, "reloads"))
	}
}

func rename(t *testing.T, from, to string) {
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, admin string) string {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func containsLine(body, line string) bool {
	return slices.Contains(strings.Split(body, "\n"), line)
}

func grep(body, word string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
