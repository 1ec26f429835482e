package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckListsEveryProblemInOneRun: a config error in one webhook (a
// store file that does not exist, an unknown key) does not hide a store
// that reads but is wrong (a bad password) in another: check names all.
func TestCheckListsEveryProblemInOneRun(t *testing.T) {
	conf := writeTLSConf(t, `
auditrelay { nats.url = "nats://127.0.0.1:1", admin.listen = "127.0.0.1:0" }
webhooks {
  a { url = "https://127.0.0.1:1/a", ws.ssl.trustManager.stores = [ { type = PKCS12, path = "`+tlsTestdata(t, "missing.p12")+`", password = x } ] }
  b { url = "https://127.0.0.1:1/b", ws.ssl.trustManager.stores = [ { type = JKS, path = "`+tlsTestdata(t, "truststore.jks")+`", password = "n0t-the-pa55" } ] }
  c { url = "https://127.0.0.1:1/c", ws.proxy.post = 3128 }
  d { url = "https://127.0.0.1:1/d", ws.proxy.post = 3128,
      ws.ssl.trustManager.stores = [ { type = JKS, path = "`+tlsTestdata(t, "truststore.jks")+`", password = "n0t-the-pa55" } ] }
}`)
	code, stdout, stderr := runTLSCmd(t, "check", "-config", conf)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"webhooks.a.ws.ssl.trustManager.stores[0]", "missing.p12",
		"webhooks.b.ws.ssl.trustManager.stores[0]", "wrong password",
		`webhooks.c.ws.proxy.post: unknown key, did you mean "port"?`,
		// One webhook with both kinds: the structural error does not hide
		// its store's.
		`webhooks.d.ws.proxy.post: unknown key, did you mean "port"?`,
		`webhook "d": webhooks.d.ws.ssl.trustManager.stores[0]`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check does not report %q:\n%s", want, stderr)
		}
	}
	if n := strings.Count(stderr, "missing.p12"); n != 1 {
		t.Errorf("the missing file is reported %d times, want once:\n%s", n, stderr)
	}
	// run refuses the same file at start with the same list.
	code, _, runErr := runTLSCmd(t, "run", "-config", conf)
	if code != exitUsage {
		t.Fatalf("run: exit %d, want 2\n%s", code, runErr)
	}
	for _, want := range []string{`webhooks.d.ws.proxy.post`, `webhook "d": webhooks.d.ws.ssl.trustManager.stores[0]`, "wrong password"} {
		if !strings.Contains(runErr, want) {
			t.Errorf("run does not report %q:\n%s", want, runErr)
		}
	}
}

// TestCheckIngestStores: a missing trust store of the ingest does not hide
// its key store's wrong password.
func TestCheckIngestStores(t *testing.T) {
	abs, err := filepath.Abs("../../ingest/testdata/server.p12")
	if err != nil {
		t.Fatal(err)
	}
	conf := writeTLSConf(t, `
auditrelay { nats.url = "nats://127.0.0.1:1", admin.listen = "127.0.0.1:0" }
auditrelay.ingest {
  enabled = true
  tls.keyManager.stores = [ { type = PKCS12, path = "`+abs+`", password = "n0t-the-pa55" } ]
  tls.trustManager.stores = [ { type = PEM, path = "missing-ca.pem" } ]
}`)
	code, stdout, stderr := runTLSCmd(t, "check", "-config", conf)
	if code != exitUsage {
		t.Fatalf("exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"auditrelay.ingest.tls.trustManager.stores[0].path: cannot read file", "missing-ca.pem",
		"auditrelay.ingest.tls.keyManager.stores[0] (" + abs + "): wrong password",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check does not report %q:\n%s", want, stderr)
		}
	}
}
