package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/tlstest"
)

// The store password of every file in tlsconf/testdata.
const storePass = "changeit"

// tlsTestdata is the absolute path of a file of tlsconf/testdata.
func tlsTestdata(t *testing.T, name string) string { return tlstest.Path(t, name) }

// writeTLSConf writes an application.conf in a fresh directory.
func writeTLSConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "application.conf")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runTLSCmd runs the command line in-process, as main would, bounded to
// 20s, and returns its exit code and output.
func runTLSCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr,
		hup: make(chan os.Signal), getenv: func(string) string { return "" }}
	code := run(ctx, args, e)
	if ctx.Err() != nil {
		t.Fatalf("auditrelay %s did not finish within 20s", strings.Join(args, " "))
	}
	return code, stdout.String(), stderr.String()
}

// hookServer is an https endpoint with tlsconf/testdata's server certificate
// (127.0.0.1, ::1, localhost) that records the bodies it got.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	bodies []string
}

func startHookTLS(t *testing.T) *hookServer {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(tlsTestdata(t, "server.pem"), tlsTestdata(t, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	h := &hookServer{}
	h.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, string(body))
		h.mu.Unlock()
	}))
	h.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	h.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	h.StartTLS()
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) got() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.bodies...)
}

// TestStoreProblemsExit2 (SPEC §2.1): a store that cannot be read is a
// configuration error naming the webhook, the key path and the file, in
// `check` and in `run` alike, exit 2, and the store's password is never
// shown.
func TestStoreProblemsExit2(t *testing.T) {
	tests := []struct {
		name, ssl, keyPath, file, cause string
	}{
		{"wrong password",
			`trustManager.stores = [ { type = "JKS", path = "%truststore.jks", password = "n0t-the-pa55" } ]`,
			"webhooks.siem.ws.ssl.trustManager.stores[0]", "truststore.jks", "wrong password"},
		{"missing file",
			`trustManager.stores = [ { type = "PKCS12", path = "%missing.p12", password = "n0t-the-pa55" } ]`,
			"webhooks.siem.ws.ssl.trustManager.stores[0]", "missing.p12", "no such file"},
		{"expired client certificate",
			`keyManager.stores = [ { type = "PKCS12", path = "%expired-client.p12", password = "n0t-the-pa55" } ]`,
			"webhooks.siem.ws.ssl.keyManager.stores[0]", "expired-client.p12", "expired"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ssl := strings.ReplaceAll(tc.ssl, "%", tlsTestdata(t, "")+string(filepath.Separator))
			if tc.name == "expired client certificate" {
				ssl = strings.ReplaceAll(ssl, "n0t-the-pa55", storePass)
			}
			conf := writeTLSConf(t, `
auditrelay { nats.url = "nats://127.0.0.1:1", admin.listen = "127.0.0.1:0" }
webhooks {
  siem { url = "https://127.0.0.1:1/hook", ws { ssl { `+ssl+` } } }
}`)
			for _, cmd := range []string{"check", "run"} {
				code, stdout, stderr := runTLSCmd(t, cmd, "-config", conf)
				if code != exitUsage {
					t.Errorf("%s: exit %d, want 2\nstdout: %s\nstderr: %s", cmd, code, stdout, stderr)
				}
				for _, want := range []string{`siem`, tc.keyPath, tlsTestdata(t, tc.file), tc.cause} {
					if !strings.Contains(stderr, want) {
						t.Errorf("%s: stderr does not name %q:\n%s", cmd, want, stderr)
					}
				}
				if strings.Contains(stdout+stderr, "n0t-the-pa55") || strings.Contains(stdout+stderr, storePass) {
					t.Errorf("%s shows a store password:\n%s%s", cmd, stdout, stderr)
				}
			}
		})
	}
}

// TestCheckShowsNoPassword: check prints the resolved config of a file full
// of store and proxy passwords without any of them.
func TestCheckShowsNoPassword(t *testing.T) {
	conf := writeTLSConf(t, `
webhooks {
  siem {
    url = "https://127.0.0.1:1/hook"
    ws {
      proxy { host = "127.0.0.1", port = 3128, user = "alice", password = "pr0xy-pa55" }
      ssl {
        trustManager { stores = [ { type = "JKS", path = "`+tlsTestdata(t, "truststore.jks")+`", password = "`+storePass+`" } ] }
        keyManager { stores = [ { type = "PKCS12", path = "`+tlsTestdata(t, "client.p12")+`", password = "`+storePass+`" } ] }
      }
    }
  }
}`)
	code, stdout, stderr := runTLSCmd(t, "check", "-config", conf)
	if code != exitOK || !strings.Contains(stdout, "OK, 1 webhooks") {
		t.Fatalf("check: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, secret := range []string{"pr0xy-pa55", storePass} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("check shows %q:\n%s", secret, stdout)
		}
	}
}
