package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/relay"
)

// demoEntries are the seed entries, a copy of examples/entries.jsonl
// (go:embed cannot reach outside the package directory).
//
//go:embed demo_entries.jsonl
var demoEntries []byte

// cmdDemo runs everything in one process (SPEC §3): an embedded NATS
// server, the sidecar, three local HTTPS receivers (trusted through a
// generated JKS, through PEM, and through PEM behind an HTTP CONNECT
// proxy) and the ingest listener, POSTs the seed entries to it as TheHive
// does, and prints what each receiver got.
func cmdDemo(ctx context.Context, args []string, e *env) error {
	fs := flags("demo", e)
	limit := fs.Duration("timeout", 30*time.Second, "how long to wait for every receiver to get every entry")
	if err := parse(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "auditrelay-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{dir: dir, log: relay.NewLogger(config.Log{Level: "warn", Format: "text"}, e.stderr), out: e.stdout, stderr: e.stderr}
	defer d.close()
	if err := d.start(); err != nil {
		return err
	}
	return d.run(ctx, *limit)
}

// demo holds what the demo starts, closed in reverse order.
type demo struct {
	dir       string
	log       *slog.Logger
	out       io.Writer
	stderr    io.Writer
	emb       *audit.Embedded
	receivers []*demoReceiver
	proxy     *demoProxy
	closers   []func()
	published sync.Map // entry body -> publish time
}

func (d *demo) close() {
	for _, c := range slices.Backward(d.closers) {
		c()
	}
}

// start makes the TLS material, NATS, the receivers and the proxy.
func (d *demo) start() error {
	pki, err := newDemoPKI(d.dir)
	if err != nil {
		return fmt.Errorf("demo certificates: %w", err)
	}
	d.emb, err = audit.StartEmbedded(config.Embedded{Enabled: true, Listen: "127.0.0.1:0",
		StoreDir: filepath.Join(d.dir, "nats")}, relay.NewLogger(config.Log{Level: "warn"}, io.Discard))
	if err != nil {
		return err
	}
	d.closers = append(d.closers, d.emb.Close)
	for _, name := range []string{"jks", "pem", "proxied"} {
		rc, err := startDemoReceiver(name, pki.server, d)
		if err != nil {
			return err
		}
		d.receivers = append(d.receivers, rc)
		d.closers = append(d.closers, rc.close)
	}
	if d.proxy, err = startDemoProxy(); err != nil {
		return err
	}
	d.closers = append(d.closers, d.proxy.close)
	return d.writeConfig(pki)
}

// writeConfig writes the demo's application.conf beside its certificates.
func (d *demo) writeConfig(pki *demoPKI) error {
	conf := fmt.Sprintf(`
auditrelay {
  nats.url = %q
  admin.listen = "127.0.0.1:0"
  ingest { enabled = true, listen = "127.0.0.1:0" }   # TheHive's own webhooks post here
  log { level = warn, format = text }
  shutdownTimeout = 5s
}
webhooks {
  jks.url = "https://127.0.0.1:%d/jks"
  jks.ws.ssl.trustManager.stores = [ { type = JKS, path = "ca.jks", password = %q } ]
  pem.url = "https://localhost:%d/pem"
  pem.ws.ssl.trustManager.stores = [ { type = PEM, path = "ca.pem" } ]
  proxied.url = "https://127.0.0.1:%d/proxied"
  proxied.ws.ssl.trustManager.stores = [ { type = PEM, path = "ca.pem" } ]
  proxied.ws.proxy { protocol = http, host = "127.0.0.1", port = %d }
}
`, d.emb.URL(), d.receivers[0].port(), pki.jksPassword, d.receivers[1].port(), d.receivers[2].port(), d.proxy.port())
	return os.WriteFile(filepath.Join(d.dir, "application.conf"), []byte(conf), 0o600)
}

// run starts the sidecar, publishes, waits and prints the table.
func (d *demo) run(ctx context.Context, limit time.Duration) error {
	path := filepath.Join(d.dir, "application.conf")
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	r, err := relay.New(cfg, relay.Options{Version: version, Revision: buildRevision(), Logger: relay.NewLogger(cfg.Auditrelay.Log, d.stderr)})
	if err != nil {
		return fmt.Errorf("demo sidecar: %w", err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()
	fmt.Fprintf(d.out, "auditrelay demo: NATS %s, admin http://%s (/metrics /readyz), files in %s\n", d.emb.URL(), r.AdminAddr(), d.dir)
	deadline := time.Now().Add(limit)
	if err := demoUntil(ctx, deadline, func() bool { return len(r.NotReady()) == 0 }); err != nil {
		return fmt.Errorf("sidecar not ready: %v: %w", r.NotReady(), err)
	}
	n, err := d.post(ctx, "http://"+r.IngestAddr()+"/")
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "posted %d entries to the ingest http://%s/ as TheHive does, each stored in NATS before its 200\n", n, r.IngestAddr())
	err = demoUntil(ctx, deadline, func() bool { return d.allGot(n) })
	d.table(n)
	if err != nil {
		return fmt.Errorf("not every receiver got the %d entries within %v: %w", n, limit, err)
	}
	return nil
}

// until polls cond until it holds, ctx ends or the deadline passes.
func demoUntil(ctx context.Context, deadline time.Time, cond func() bool) error {
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// post sends the seed entries to the ingest listener as TheHive's webhooks
// do (one entry per POST, Play WS's headers), each answered once stored.
func (d *demo) post(ctx context.Context, url string) (int, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	sc := bufio.NewScanner(bytes.NewReader(demoEntries))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		line := bytes.Clone(bytes.TrimSpace(sc.Bytes()))
		if len(line) == 0 {
			continue
		}
		d.published.Store(string(line), time.Now())
		if err := demoPost(ctx, c, url, line); err != nil {
			return n, fmt.Errorf("post entry %d: %w", n+1, err)
		}
		n++
	}
	return n, sc.Err()
}

func demoPost(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "AHC/2.1") // TheHive's Play WS client
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ingest answered %d %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

func (d *demo) allGot(n int) bool {
	for _, rc := range d.receivers {
		if rc.distinct() < n {
			return false
		}
	}
	return true
}

// table prints per receiver what it got and how long entries took from
// publish to arrival.
func (d *demo) table(n int) {
	tw := tabwriter.NewWriter(d.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RECEIVER\tTRUST\tENTRIES\tFIRST objectId\tLAST objectId\tP50 LATENCY\tMAX LATENCY")
	for _, rc := range d.receivers {
		s := rc.summary(&d.published)
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\n", rc.name, rc.trust(), s.count, n, s.first, s.last,
			s.p50.Round(time.Millisecond/10), s.max.Round(time.Millisecond/10))
	}
	_ = tw.Flush()
	fmt.Fprintf(d.out, "proxy: %d CONNECT tunnel(s) to the proxied receiver\n", d.proxy.tunnels.Load())
}

// demoReceiver is an HTTPS endpoint that records each entry it gets.
type demoReceiver struct {
	name string
	srv  *http.Server
	l    net.Listener
	mu   sync.Mutex
	got  []demoArrival
}

type demoArrival struct {
	body string
	at   time.Time
}

func startDemoReceiver(name string, cert tls.Certificate, d *demo) (*demoReceiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rc := &demoReceiver{name: name, l: l}
	rc.srv = &http.Server{Handler: rc, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	go func() {
		if err := rc.srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("demo receiver stopped", "receiver", name, "err", err)
		}
	}()
	return rc, nil
}

func (rc *demoReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil || !json.Valid(body) {
		http.Error(w, `{"error":"body is not JSON"}`, http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	rc.got = append(rc.got, demoArrival{body: string(body), at: time.Now()})
	rc.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"message":"received"}`)
}

func (rc *demoReceiver) port() int { return rc.l.Addr().(*net.TCPAddr).Port }

func (rc *demoReceiver) trust() string {
	switch rc.name {
	case "jks":
		return "JKS trust store"
	case "pem":
		return "PEM trust store"
	}
	return "PEM, via HTTP CONNECT proxy"
}

func (rc *demoReceiver) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = rc.srv.Shutdown(ctx)
}

// distinct counts the different entries received (a redelivery counts once).
func (rc *demoReceiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	seen := map[string]bool{}
	for _, a := range rc.got {
		seen[a.body] = true
	}
	return len(seen)
}

// demoSummary is one row of the table.
type demoSummary struct {
	count       int
	first, last string
	p50, max    time.Duration
}

func (rc *demoReceiver) summary(published *sync.Map) demoSummary {
	rc.mu.Lock()
	got := slices.Clone(rc.got)
	rc.mu.Unlock()
	s := demoSummary{count: len(got), first: "-", last: "-"}
	if len(got) == 0 {
		return s
	}
	s.first, s.last = demoObjectID(got[0].body), demoObjectID(got[len(got)-1].body)
	var lat []time.Duration
	for _, a := range got {
		if t, ok := published.Load(a.body); ok {
			lat = append(lat, a.at.Sub(t.(time.Time)))
		}
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		s.p50, s.max = lat[(len(lat)-1)/2], lat[len(lat)-1]
	}
	return s
}

func demoObjectID(body string) string {
	var e struct {
		ObjectID string `json:"objectId"`
	}
	_ = json.Unmarshal([]byte(body), &e)
	return e.ObjectID
}

// demoProxy is a minimal HTTP CONNECT proxy that tunnels to loopback
// addresses only.
type demoProxy struct {
	srv     *http.Server
	l       net.Listener
	tunnels atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
}

func startDemoProxy() (*demoProxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &demoProxy{l: l}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

func (p *demoProxy) port() int { return p.l.Addr().(*net.TCPAddr).Port }

func (p *demoProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if ip := net.ParseIP(host); r.Method != http.MethodConnect || err != nil || ip == nil || !ip.IsLoopback() {
		http.Error(w, "the demo proxy tunnels to loopback addresses only", http.StatusForbidden)
		return
	}
	target, err := net.DialTimeout("tcp", r.Host, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	client, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		target.Close()
		return
	}
	p.track(client, target)
	p.tunnels.Add(1)
	_, _ = io.WriteString(client, "HTTP/1.1 200 Connection Established\r\n\r\n")
	go demoPipe(client, target)
	go demoPipe(target, client)
}

func demoPipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *demoProxy) track(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, conns...)
}

func (p *demoProxy) close() {
	_ = p.srv.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// demoPKI is the demo's TLS material, made at run time.
type demoPKI struct {
	server      tls.Certificate
	jksPassword string
}

// newDemoPKI makes a CA and a server certificate for 127.0.0.1, ::1 and
// localhost, and writes the CA as ca.pem and as the JKS ca.jks in dir.
func newDemoPKI(dir string) (*demoPKI, error) {
	caKey, caCert, err := demoCert("auditrelay demo CA", nil, nil)
	if err != nil {
		return nil, err
	}
	key, cert, err := demoCert("auditrelay demo receiver", caCert, caKey)
	if err != nil {
		return nil, err
	}
	pki := &demoPKI{server: tls.Certificate{Certificate: [][]byte{cert.Raw, caCert.Raw}, PrivateKey: key, Leaf: cert}}
	pki.jksPassword = demoRandomHex(12)
	if err := os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caCert.Raw}), 0o600); err != nil {
		return nil, err
	}
	return pki, writeDemoJKS(filepath.Join(dir, "ca.jks"), caCert, pki.jksPassword)
}

// demoCert makes a key and certificate valid for a day: a CA when parent
// is nil, else a server certificate for the loopback names.
func demoCert(cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn, Organization: []string{"auditrelay demo"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
		parent, parentKey = tmpl, key
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames, tmpl.IPAddresses = []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func writeDemoJKS(path string, ca *x509.Certificate, password string) error {
	ks := keystore.New()
	err := ks.SetTrustedCertificateEntry("demo-ca", keystore.TrustedCertificateEntry{
		CreationTime: time.Now(), Certificate: keystore.Certificate{Type: "X.509", Content: ca.Raw}})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := ks.Store(&buf, []byte(password)); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

func demoRandomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
