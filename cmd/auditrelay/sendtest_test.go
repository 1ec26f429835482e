package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/internal/proxytest"
)

const serverSubject = "CN=auditrelay test server,O=auditrelay tests"

// sendTestConf is a config whose webhooks (HOCON inside `webhooks { }`)
// need no NATS: send-test never connects to it.
func sendTestConf(t *testing.T, webhooks string) string {
	return writeTLSConf(t, `auditrelay.nats.url = "nats://127.0.0.1:1"
webhooks {
`+webhooks+`
}`)
}

func jksTrust(t *testing.T, file string) string {
	return fmt.Sprintf(`ssl.trustManager { stores = [ { type = "JKS", path = %q, password = %q } ] }`, tlsTestdata(t, file), storePass)
}

func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l+"\n") {
			t.Errorf("output lacks line %q:\n%s", l, out)
		}
	}
}

// TestSendTestTLS: status, TLS version and verified peer are printed, and
// the endpoint got the webhook.test entry.
func TestSendTestTLS(t *testing.T) {
	srv := startHookTLS(t)
	conf := sendTestConf(t, fmt.Sprintf(`siem { url = "%s/hook?token=t0ken-s3cret", ws { %s } }`, srv.URL, jksTrust(t, "truststore.jks")))
	code, stdout, stderr := runTLSCmd(t, "send-test", "-config", conf)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	wantLines(t, stdout,
		"siem  "+srv.URL+"/****",
		"  status   200 OK",
		"  tls      TLS 1.3, peer "+serverSubject,
		"  proxy    direct",
		"# 1 of 1 webhooks answered 2xx")
	got := srv.got()
	if len(got) != 1 || !strings.Contains(got[0], `"objectType":"webhook.test"`) || !strings.Contains(got[0], `"title":"auditrelay send-test"`) {
		t.Errorf("endpoint got %q", got)
	}
	for _, secret := range []string{storePass, "t0ken-s3cret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("output shows %q:\n%s%s", secret, stdout, stderr)
		}
	}
}

// TestSendTestThroughProxy: the proxy is printed without its credentials,
// and the test really went through it.
func TestSendTestThroughProxy(t *testing.T) {
	srv := startHookTLS(t)
	proxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "pr0xy-pa55"})
	addr := proxy.Addr()
	host, port, _ := strings.Cut(addr, ":")
	conf := sendTestConf(t, fmt.Sprintf(`siem { url = "%s/hook", ws {
  %s
  proxy { host = %q, port = %s, protocol = http, user = alice, password = "pr0xy-pa55" }
} }`, srv.URL, jksTrust(t, "truststore.jks"), host, port))
	code, stdout, stderr := runTLSCmd(t, "send-test", "-config", conf)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	wantLines(t, stdout, "  status   200 OK", "  proxy    http://"+addr, "  tls      TLS 1.3, peer "+serverSubject)
	want := proxytest.Request{Method: "CONNECT", Target: strings.TrimPrefix(srv.URL, "https://"), Auth: proxytest.BasicAuth("alice", "pr0xy-pa55")}
	if got := proxy.Requests(); len(got) != 1 || got[0] != want {
		t.Errorf("proxy saw %+v, want [%+v]", got, want)
	}
	if strings.Contains(stdout+stderr, "pr0xy-pa55") {
		t.Errorf("output shows the proxy password:\n%s%s", stdout, stderr)
	}
}

// TestSendTestWrongStore: a webhook trusting the wrong CA fails with "tls"
// and exit 1, naming the certificate it did not trust; the good one is
// still tested and reported; -webhook tests only the one named.
func TestSendTestWrongStore(t *testing.T) {
	srv := startHookTLS(t)
	conf := sendTestConf(t, fmt.Sprintf(`
good  { url = "%s/good", ws { %s } }
wrong { url = "%s/wrong", ws { %s } }`, srv.URL, jksTrust(t, "truststore.jks"), srv.URL, jksTrust(t, "wrong-ca.jks")))

	code, stdout, stderr := runTLSCmd(t, "send-test", "-config", conf)
	if code != exitFailure {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	wantLines(t, stdout, "good  "+srv.URL+"/****", "wrong  "+srv.URL+"/****",
		"  tls      peer "+serverSubject+" (not verified)")
	if !strings.Contains(stdout, "  status   failed (tls): ") || !strings.Contains(stdout, "  status   200 OK") {
		t.Errorf("want one 200 and one tls failure:\n%s", stdout)
	}
	if !strings.Contains(stderr, "1 of 2 webhooks did not answer 2xx") {
		t.Errorf("stderr: %s", stderr)
	}

	code, stdout, _ = runTLSCmd(t, "send-test", "-config", conf, "-webhook", "wrong")
	if code != exitFailure || strings.Contains(stdout, "good") || !strings.Contains(stdout, "failed (tls)") {
		t.Errorf("-webhook wrong: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runTLSCmd(t, "send-test", "-config", conf, "-webhook", "good")
	if code != exitOK || strings.Contains(stdout, "wrong") {
		t.Errorf("-webhook good: exit %d\n%s", code, stdout)
	}
	if n := len(srv.got()); n != 2 {
		t.Errorf("endpoint got %d requests, want 2 (the good webhook twice)", n)
	}
}

// TestSendTestConfigErrors exit 2: an unknown -webhook, a store that does
// not read (named as check names it).
func TestSendTestConfigErrors(t *testing.T) {
	conf := sendTestConf(t, `siem { url = "https://127.0.0.1:1/hook", ws.ssl.trustManager.stores = [ { type = JKS, path = "`+
		tlsTestdata(t, "truststore.jks")+`", password = "n0t-the-pa55" } ] }`)
	code, _, stderr := runTLSCmd(t, "send-test", "-config", conf, "-webhook", "nope")
	if code != exitUsage || !strings.Contains(stderr, `no webhook named "nope"`) {
		t.Errorf("unknown webhook: exit %d: %s", code, stderr)
	}
	code, stdout, stderr := runTLSCmd(t, "send-test", "-config", conf)
	if code != exitUsage || !strings.Contains(stderr, "webhooks.siem.ws.ssl.trustManager.stores[0] ("+tlsTestdata(t, "truststore.jks")+"): wrong password") {
		t.Errorf("bad store: exit %d\n%s%s", code, stdout, stderr)
	}
	if strings.Contains(stdout+stderr, "n0t-the-pa55") {
		t.Errorf("output shows the store password:\n%s", stderr)
	}
}
