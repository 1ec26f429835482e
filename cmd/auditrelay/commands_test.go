package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// bgCmd is a command running in-process in the background, as main would
// run it, until the test cancels it.
type bgCmd struct {
	stdout, stderr *syncBuffer
	cancel         context.CancelFunc
	done           chan int
	code           int
	exited         bool
}

// startCmd runs args in-process with the given environment; it is stopped
// when the test ends.
func startCmd(t *testing.T, environ map[string]string, args ...string) *bgCmd {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &bgCmd{stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	e := &env{stdin: strings.NewReader(""), stdout: c.stdout, stderr: c.stderr, hup: make(chan os.Signal),
		getenv: func(k string) string { return environ[k] }}
	go func() { c.done <- run(ctx, args, e) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

// stop cancels the command (as SIGTERM would) and returns its exit code.
func (c *bgCmd) stop(t *testing.T) int {
	t.Helper()
	if c.exited {
		return c.code
	}
	c.cancel()
	select {
	case c.code = <-c.done:
		c.exited = true
	case <-time.After(20 * time.Second):
		t.Fatalf("command did not stop within 20s; stderr:\n%s", c.stderr.String())
	}
	return c.code
}

// await waits until the command's stderr matches re and returns the
// first submatch.
func (c *bgCmd) await(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var m []string
	waitUntil(t, 15*time.Second, "stderr matching "+re, func() bool {
		select {
		case code := <-c.done:
			c.done <- code
			t.Fatalf("command exited %d early; stderr:\n%s", code, c.stderr.String())
		default:
		}
		m = rx.FindStringSubmatch(c.stderr.String())
		return m != nil
	})
	return m[1]
}

// lines are the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// TestExampleConfigEmbeddedEndToEnd runs the example's own "Try it" in
// one process: `receive`, then `run` with examples/application.conf (its
// embedded NATS server, found through $AUDITRELAY_CONFIG), then `publish
// examples/entries.jsonl`; each entry reaches both of the example's
// webhooks byte for byte, and run stops with exit 0.
func TestExampleConfigEmbeddedEndToEnd(t *testing.T) {
	rcv := startCmd(t, nil, "receive", "-listen", "127.0.0.1:0")
	addr := rcv.await(t, `receiving on (\S+)`)

	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "application.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(example)
	dir := t.TempDir()
	for _, r := range []struct{ old, new string }{
		{`"127.0.0.1:4222"`, `"127.0.0.1:0"`},
		{`"data/nats"`, fmt.Sprintf("%q", filepath.Join(dir, "nats"))},
		{`"127.0.0.1:9464"`, `"127.0.0.1:0"`},
		{`"http://127.0.0.1:8080/`, `"http://` + addr + `/`},
	} {
		if !strings.Contains(conf, r.old) {
			t.Fatalf("examples/application.conf no longer holds %s", r.old)
		}
		conf = strings.ReplaceAll(conf, r.old, r.new)
	}
	file := filepath.Join(dir, "application.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}

	sidecar := startCmd(t, map[string]string{"AUDITRELAY_CONFIG": file}, "run")
	natsURL := sidecar.await(t, `embedded NATS server started"? listen=(nats://\S+)`)
	admin := sidecar.await(t, `auditrelay starting"? .*admin=(\S+)`)
	waitUntil(t, 15*time.Second, "/readyz 200", func() bool {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	entriesFile := filepath.Join("..", "..", "examples", "entries.jsonl")
	raw, err := os.ReadFile(entriesFile)
	if err != nil {
		t.Fatal(err)
	}
	want := lines(string(raw))
	code, _, stderr := runTLSCmd(t, "publish", "-nats", natsURL, entriesFile)
	if code != 0 || !strings.Contains(stderr, fmt.Sprintf("published %d entries", len(want))) {
		t.Fatalf("publish exited %d: %s", code, stderr)
	}
	var expect []string
	for _, path := range []string{"/siem", "/soar"} {
		for _, w := range want {
			expect = append(expect, path+" "+w)
		}
	}
	waitUntil(t, 20*time.Second, "every entry at both webhooks", func() bool {
		return len(lines(rcv.stdout.String())) >= len(expect)
	})
	got := lines(rcv.stdout.String())
	slices.Sort(got)
	slices.Sort(expect)
	if !slices.Equal(got, expect) {
		t.Errorf("the receiver printed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(expect, "\n"))
	}
	if code := sidecar.stop(t); code != 0 {
		t.Errorf("run exited %d after its context ended, want 0; stderr:\n%s", code, sidecar.stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); err != nil {
		t.Errorf("the embedded server kept nothing in storeDir: %v", err)
	}
}

// TestConfigFromEnvironment (SPEC §3): without -config, commands read
// $AUDITRELAY_CONFIG; -config still wins over it.
func TestConfigFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	write := func(name, hook string) string {
		p := filepath.Join(dir, name)
		text := fmt.Sprintf(`auditrelay.nats.url = "nats://127.0.0.1:1"
webhooks.%s { url = "https://%s.example.org/hook" }
`, hook, hook)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fromEnv, fromFlag := write("env.conf", "envhook"), write("flag.conf", "flaghook")
	check := func(environ map[string]string, args ...string) (int, string, string) {
		c := startCmd(t, environ, append([]string{"check"}, args...)...)
		select {
		case code := <-c.done:
			c.exited, c.code = true, code
		case <-time.After(20 * time.Second):
			t.Fatal("check did not finish within 20s")
		}
		return c.code, c.stdout.String(), c.stderr.String()
	}

	code, out, errs := check(map[string]string{"AUDITRELAY_CONFIG": fromEnv})
	if code != 0 || !strings.Contains(out, "envhook") {
		t.Errorf("check with $AUDITRELAY_CONFIG: exit %d, want 0 and the file's webhook\n%s%s", code, out, errs)
	}
	code, out, errs = check(map[string]string{"AUDITRELAY_CONFIG": fromEnv}, "-config", fromFlag)
	if code != 0 || !strings.Contains(out, "flaghook") || strings.Contains(out, "envhook") {
		t.Errorf("check -config with $AUDITRELAY_CONFIG set: exit %d, want the flag's file\n%s%s", code, out, errs)
	}
	missing := filepath.Join(dir, "nowhere.conf")
	code, out, errs = check(map[string]string{"AUDITRELAY_CONFIG": missing})
	if code != 2 || !strings.Contains(out+errs, "nowhere.conf") {
		t.Errorf("check with $AUDITRELAY_CONFIG naming a missing file: exit %d, want 2 naming it\n%s%s", code, out, errs)
	}
	code, out, errs = check(nil, "-h")
	if !strings.Contains(errs, "AUDITRELAY_CONFIG") || !strings.Contains(errs, `default "application.conf"`) {
		t.Errorf("check -h without $AUDITRELAY_CONFIG: exit %d, want ./application.conf as the default\n%s%s", code, out, errs)
	}
}

// TestVersionCommand (SPEC §3): version prints the version, the revision
// and the Go version, exit 0.
func TestVersionCommand(t *testing.T) {
	code, out, errs := runTLSCmd(t, "version")
	if code != 0 {
		t.Fatalf("version exited %d: %s", code, errs)
	}
	want := regexp.MustCompile(`^auditrelay ` + regexp.QuoteMeta(version) + ` \(revision (\S+), ` + regexp.QuoteMeta(runtime.Version()) + `\)\n$`)
	if !want.MatchString(out) {
		t.Errorf("version printed %q, want %q", out, want)
	}
	old := revision
	revision = "0123abcd"
	t.Cleanup(func() { revision = old })
	if _, out, _ := runTLSCmd(t, "version"); !strings.Contains(out, "(revision 0123abcd, ") {
		t.Errorf("version with -X main.revision=0123abcd printed %q", out)
	}
	if code, _, _ := runTLSCmd(t, "version", "-bogus"); code != 2 {
		t.Errorf("version -bogus exited %d, want 2", code)
	}
}

// TestPublishCommand (SPEC §3): publish stores each line of a file (or of
// standard input) unchanged, on thehive.audit.<objectType> or on -subject,
// skips blank lines, and says how many it published.
func TestPublishCommand(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ALL", Subjects: []string{"thehive.>", "soc.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatal(err)
	}
	in := []string{
		`{"operation":"Creation", "objectType":"case","objectId":"c1"}`,
		`{"operation":"Update","objectType":"case_task","objectId":"t1"}`,
		`{"operation":"Delete","objectType":"alert","objectId":"a1"}`,
	}
	file := filepath.Join(t.TempDir(), "entries.jsonl")
	if err := os.WriteFile(file, []byte(in[0]+"\n\n"+in[1]+"\r\n"+in[2]), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runTLSCmd(t, "publish", "-nats", srv.ClientURL(), file)
	if code != 0 || !strings.Contains(errs, "published 3 entries from "+file) {
		t.Fatalf("publish exited %d: %s", code, errs)
	}
	subjects := []string{"thehive.audit.case", "thehive.audit.case_task", "thehive.audit.alert"}
	for i, want := range in {
		msg, err := st.GetMsg(t.Context(), uint64(i+1))
		if err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
		if string(msg.Data) != want || msg.Subject != subjects[i] {
			t.Errorf("message %d: %s on %s, want %s on %s", i+1, msg.Data, msg.Subject, want, subjects[i])
		}
	}

	// Standard input, with -subject and $NATS_URL.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stderr strings.Builder
	code = run(ctx, []string{"publish", "-subject", "soc.audit", "-"}, &env{
		stdin: strings.NewReader(in[0] + "\n" + in[2] + "\n"), stdout: io.Discard, stderr: &stderr,
		getenv: func(k string) string {
			if k == "NATS_URL" {
				return srv.ClientURL()
			}
			return ""
		}})
	if code != 0 || !strings.Contains(stderr.String(), "published 2 entries from standard input") {
		t.Fatalf("publish from stdin exited %d: %s", code, stderr.String())
	}
	for i, want := range []string{in[0], in[2]} {
		msg, err := st.GetMsg(t.Context(), uint64(4+i))
		if err != nil {
			t.Fatalf("message %d: %v", 4+i, err)
		}
		if string(msg.Data) != want || msg.Subject != "soc.audit" {
			t.Errorf("message %d: %s on %s, want %s on soc.audit", 4+i, msg.Data, msg.Subject, want)
		}
	}
	if info, _ := st.Info(t.Context()); info.State.Msgs != 5 {
		t.Errorf("%d messages stored, want 5", info.State.Msgs)
	}
}

// TestReceiveCommand (SPEC §3): the reference receiver prints each JSON
// payload with its path and answers 200 {"message"}, 401 {"error"} on a
// wrong bearer token, 400 {"error"} on a body that is not JSON; with
// -tls-cert/-tls-key it serves HTTPS.
func TestReceiveCommand(t *testing.T) {
	rcv := startCmd(t, nil, "receive", "-listen", "127.0.0.1:0", "-token", "s3cr3t",
		"-tls-cert", tlsTestdata(t, "server.pem"), "-tls-key", tlsTestdata(t, "server-key.pem"))
	addr := rcv.await(t, `receiving on (\S+)`)
	caPEM, err := os.ReadFile(tlsTestdata(t, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	post := func(token, body string) (int, map[string]string) {
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/siem", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		var reply map[string]string
		if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil {
			t.Errorf("reply to %q is not a JSON object: %v", body, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("reply Content-Type %q", ct)
		}
		return resp.StatusCode, reply
	}
	entry := `{"operation":"Creation","objectType":"case","objectId":"c1"}`
	if code, reply := post("s3cr3t", entry); code != http.StatusOK || reply["message"] == "" {
		t.Errorf("good request: %d %v, want 200 with a message", code, reply)
	}
	if code, reply := post("wrong", entry); code != http.StatusUnauthorized || reply["error"] == "" {
		t.Errorf("wrong token: %d %v, want 401 with an error", code, reply)
	}
	if code, reply := post("", entry); code != http.StatusUnauthorized || reply["error"] == "" {
		t.Errorf("no token: %d %v, want 401 with an error", code, reply)
	}
	if code, reply := post("s3cr3t", "not json"); code != http.StatusBadRequest || reply["error"] == "" {
		t.Errorf("not JSON: %d %v, want 400 with an error", code, reply)
	}
	if got := lines(rcv.stdout.String()); !slices.Equal(got, []string{"/siem " + entry}) {
		t.Errorf("receive printed %q, want only the accepted payload", got)
	}
	if code := rcv.stop(t); code != 0 {
		t.Errorf("receive exited %d when stopped, want 0", code)
	}
}
