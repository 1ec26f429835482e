package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// env is one run's world: a NATS server with the audit stream, and the
// counting receivers.
type env struct {
	dir   string
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	recvs []*counter
}

func newEnv(ctx context.Context, webhooks, entries int, useTLS, h2 bool) (*env, error) {
	dir, err := os.MkdirTemp("", "auditrelay-bench-run")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
		MaxPayload: int32(max(1<<20, entryBytes+64<<10))})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("nats server did not start")
	}
	e := &env{dir: dir, srv: srv}
	if e.nc, err = nats.Connect(srv.ClientURL()); err != nil {
		return nil, err
	}
	e.js, _ = jetstream.New(e.nc)
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{Name: "THEHIVE_AUDIT", Subjects: []string{"thehive.audit.>"}}); err != nil {
		return nil, err
	}
	for range webhooks {
		e.recvs = append(e.recvs, newCounter(entries, useTLS, h2))
	}
	return e, nil
}

func (e *env) close() {
	for _, r := range e.recvs {
		r.Close()
	}
	e.nc.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	os.RemoveAll(e.dir)
}

// counter is a fast receiver that counts each entry it gets (by the
// entry's benchN) and the publish-to-receipt latency (from benchTs).
type counter struct {
	*httptest.Server
	seen    []atomic.Uint32
	total   atomic.Int64
	posts   atomic.Int64 // requests with at least one entry
	failing atomic.Bool  // answer 503: the endpoint is down
	conns   atomic.Int64
	mu      sync.Mutex
	latency []time.Duration
}

func newCounter(entries int, useTLS, h2 bool) *counter {
	c := &counter{seen: make([]atomic.Uint32, entries)}
	c.Server = httptest.NewUnstartedServer(http.HandlerFunc(c.serve))
	c.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			c.conns.Add(1)
		}
	}
	if useTLS {
		c.EnableHTTP2 = h2
		c.StartTLS()
	} else {
		c.Start()
	}
	return c
}

var (
	keyN  = []byte(`"benchN":`)
	keyTs = []byte(`"benchTs":`)
)

func (c *counter) serve(w http.ResponseWriter, r *http.Request) {
	if c.failing.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(r.Body)
	now := time.Now().UnixNano()
	// A body holds one entry, or a batch of them (a JSON array, HEC events
	// one after another): each entry is counted by its own benchN, and
	// timed by its own benchTs.
	if bytes.Contains(buf.Bytes(), keyN) {
		c.posts.Add(1)
	}
	for body := buf.Bytes(); ; {
		n, rest := field(body, keyN)
		if rest == nil {
			break
		}
		if n >= 0 && n < int64(len(c.seen)) {
			c.seen[n].Add(1)
			c.total.Add(1)
		}
		if ts, _ := field(rest, keyTs); ts > 0 {
			c.mu.Lock()
			c.latency = append(c.latency, time.Duration(now-ts))
			c.mu.Unlock()
		}
		body = rest
	}
}

// field reads the integer after the first key in body (-1 when it is not
// one) and returns the body after it; rest is nil when key is absent.
func field(body, key []byte) (v int64, rest []byte) {
	i := bytes.Index(body, key)
	if i < 0 {
		return -1, nil
	}
	rest = body[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return -1, rest[j:]
	}
	return v, rest[j:]
}

// lost and duplicates over entries [0, n).
func (c *counter) lostDup(n int) (lost, dup int) {
	for i := range n {
		switch v := c.seen[i].Load(); {
		case v == 0:
			lost++
		case v > 1:
			dup += int(v - 1)
		}
	}
	return lost, dup
}

func (e *env) delivered() int64 {
	var n int64
	for _, r := range e.recvs {
		n += r.total.Load()
	}
	return n
}

// entryBytes, when set (-entry-bytes), pads every entry to about that
// size: the NATS server's max_payload and auditrelay's maxEntryBytes are
// raised to take it.
var entryBytes int

// entry is a TheHive-shaped audit entry of about 1.5 KB, or entryBytes.
func entry(n int, ts int64) []byte {
	b := entry15(n, ts)
	if pad := entryBytes - len(b) - len(`,"benchPad":""`); pad > 0 {
		b = append(b[:len(b)-1], `,"benchPad":"`...)
		b = append(b, strings.Repeat("x", pad)...)
		b = append(b, `"}`...)
	}
	return b
}

func entry15(n int, ts int64) []byte {
	root := "AV6FZsTj0KeanEfOQ" + strconv.Itoa(n%500)
	return fmt.Appendf(nil, `{"benchN":%d,"benchTs":%d,"operation":"Update","objectType":"case_task","objectId":"task-%d","startDate":1505476659427,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:%d","rootId":%q,"base":true,"details":{"status":"InProgress","title":"Investigate suspicious logon on host WS-%d","description":%q},"object":{"_type":"case_task","_id":"task-%d","title":"Investigate suspicious logon","status":"InProgress","owner":"analyst","flag":false,"startDate":1505476659427,"order":0,"group":"default","createdBy":"admin","updatedBy":"analyst","createdAt":1505476659427,"updatedAt":1505476659500,"description":%q}}`,
		n, ts, n, n, root, n%1000, strings.Repeat("Lateral movement indicators seen on the domain controller. ", 6), n, strings.Repeat("Check EDR telemetry and firewall logs. ", 8))
}

// publish sends entries [from, to) with JetStream acknowledgements.
func (e *env) publish(ctx context.Context, from, to int, stamp bool) error {
	var futures []jetstream.PubAckFuture
	for n := from; n < to; n++ {
		var ts int64
		if stamp {
			ts = time.Now().UnixNano()
		}
		f, err := e.js.PublishAsync("thehive.audit.case_task", entry(n, ts))
		if err != nil {
			return err
		}
		futures = append(futures, f)
		// Large entries: wait every 32 MiB, or the server refuses more
		// (429, too many requests).
		if entryBytes > 0 && len(futures)*entryBytes >= 32<<20 {
			if err := wait(ctx, futures); err != nil {
				return err
			}
			futures = futures[:0]
		}
	}
	return wait(ctx, futures)
}

func wait(ctx context.Context, futures []jetstream.PubAckFuture) error {
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// proc is the measured consumer process.
type proc struct {
	cmd   *exec.Cmd
	ready func() bool
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// startRelay starts auditrelay with one webhook per receiver; hook is more
// settings of each webhook, after a comma ("" for none).
func (e *env) startRelay(bin, hook string) (*proc, error) {
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	var hooks strings.Builder
	for i, r := range e.recvs {
		fmt.Fprintf(&hooks, "  w%d { url = %q, delivery.start = all%s%s }\n", i, r.URL+"/hook", trustAll(r), hook)
	}
	conf := fmt.Sprintf("auditrelay {\n  nats.url = %q\n  nats.stream.create = false\n  nats.maxEntryBytes = %d\n  admin.listen = %q\n  log.level = warn\n}\nwebhooks {\n%s}\n",
		e.srv.ClientURL(), max(512<<10, 2*entryBytes), admin, hooks.String())
	file := filepath.Join(e.dir, "application.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-config", file)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, ready: func() bool { return httpOK("http://" + admin + "/readyz") }}, nil
}

// trustAll makes a TLS receiver's certificate trusted through an inline PEM
// store, as an operator would.
func trustAll(r *counter) string {
	if r.TLS == nil {
		return ""
	}
	return fmt.Sprintf(", ws.ssl.trustManager.stores = [ { type = PEM, data = %q } ]", pemOf(r.Certificate().Raw))
}

func (e *env) startBare(bin string, perWebhook, h2 bool) (*proc, error) {
	urls := make([]string, len(e.recvs))
	for i, r := range e.recvs {
		urls[i] = r.URL + "/hook"
	}
	cmd := exec.Command(bin, "bare", "-nats", e.srv.ClientURL(), "-urls", strings.Join(urls, ","),
		"-per-webhook="+strconv.FormatBool(perWebhook), "-h2="+strconv.FormatBool(h2))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, ready: func() bool { return true }}, nil
}

func httpOK(url string) bool {
	resp, err := http.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
