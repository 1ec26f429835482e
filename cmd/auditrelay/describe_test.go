package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// testdata is a file of the TLS test material, as an absolute path.
func testdata(t *testing.T, name string) string { return tlsTestdata(t, name) }

func parseConfig(t *testing.T, hocon string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(hocon), "")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, hocon)
	}
	return cfg
}

// describeSecrets are the secret values of describeConfig.
var describeSecrets = []string{"siem.example.org/hook", "url-pass-1", "url-query-2", "bearer-key-3", "proxy-pass-4",
	"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "changeit", "nats-token-5", "fetch-secret-6", "fetch-key-7"}

func describeConfig(t *testing.T, clientPassword string) *config.Config {
	return parseConfig(t, fmt.Sprintf(`
auditrelay {
  nats { url = "nats://127.0.0.1:4222", auth.token = "nats-token-5" }
  admin.fetch { key = "fetch-key-7", secret = "fetch-secret-6" }
}
webhooks {
  siem {
    url = "https://relay:url-pass-1@siem.example.org/hook?token=url-query-2"
    auth { type = bearer, key = "bearer-key-3" }
    signing.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    filter { operations = [Creation, Update], objectTypes = [case, case_task] }
    format = slack
    ws.proxy { host = "proxy.example.org", port = 3128, user = relay, password = "proxy-pass-4" }
    ws.ssl {
      trustManager.stores = [ { type = JKS, path = "%s", password = "changeit" }, { type = PEM, path = "%s" } ]
      keyManager.stores = [ { type = PKCS12, path = "%s", password = "%s" } ]
    }
  }
  plain { url = "http://127.0.0.1:8080/plain", enabled = false }
}
`, testdata(t, "truststore.jks"), testdata(t, "ca.pem"), testdata(t, "client.p12"), clientPassword))
}

// TestDescribe: a person reads the redacted URL, the stores' certificates
// with their expiry, the proxy, the filter and the format, and no secret.
func TestDescribe(t *testing.T) {
	cfg := describeConfig(t, "changeit")
	var out bytes.Buffer
	if err := describe(cfg, &out, time.Now()); err != nil {
		t.Fatalf("Describe: %v\n%s", err, out.String())
	}
	got := out.String()
	year := time.Now().AddDate(100, 0, 0).Format("2006")
	for _, want := range []string{
		"webhook siem  [webhooks.siem]",
		"url       https://siem.example.org:443/****",
		"format    slack, batch 1, orderBy rootId",
		"filter    operations Creation,Update, objectTypes case,case_task",
		"auth      bearer ****; signed (Standard Webhooks, 1 secret(s) ****)",
		"proxy     http://proxy.example.org:3128 (user relay, password ****)",
		"trust     JKS " + testdata(t, "truststore.jks"),
		"trust     PEM " + testdata(t, "ca.pem"),
		"CN=auditrelay test CA,O=auditrelay tests, expires " + year,
		"client    PKCS12 " + testdata(t, "client.p12"),
		"CN=auditrelay test client,O=auditrelay tests, expires " + year,
		"webhook plain (disabled)  [webhooks.plain]",
		"trust     system roots",
		"auth      token ****",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "warning") {
		t.Errorf("a warning for certificates valid 100 years:\n%s", got)
	}
	assertNoSecret(t, got, describeSecrets)
}

// TestDescribeClientCertExpiringSoon: under 30 days left is a warning.
func TestDescribeClientCertExpiringSoon(t *testing.T) {
	cfg := describeConfig(t, "changeit")
	pair, err := tlsconf.LoadKeyPair(cfg.Webhooks[1].WS.SSL.KeyManager.Stores, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := describe(cfg, &out, pair.Leaf.NotAfter.Add(-10*24*time.Hour-time.Hour)); err != nil {
		t.Fatalf("Describe: %v", err)
	}
	want := `warning   client certificate "auditrelay test client" expires in 10 days: renew it`
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// TestDescribeProblem: a store that does not read is written with its key
// path and a suggestion, and returned; the password is not.
func TestDescribeProblem(t *testing.T) {
	cfg := describeConfig(t, "wrong-password-8")
	var out bytes.Buffer
	err := describe(cfg, &out, time.Now())
	if !errors.Is(err, tlsconf.ErrWrongPassword) {
		t.Fatalf("Describe = %v, want ErrWrongPassword", err)
	}
	got := out.String()
	for _, want := range []string{
		"problem   webhooks.siem.ws.ssl.keyManager.stores[0] (" + testdata(t, "client.p12") + "): wrong password",
		"suggestion: check the store's password",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	assertNoSecret(t, got+err.Error(), []string{"wrong-password-8"})
}

// assertNoSecret fails for each secret value found in text.
func assertNoSecret(t *testing.T, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("secret %q appears in:\n%s", s, text)
		}
	}
}

// TestDescribeIngestRecipes: `check` prints, for the listener, TheHive 3's
// webhooks block, TheHive 4's endpoint and organisation PUT, TheHive 5's
// URL, and names the hops; the credentials stay ****.
func TestDescribeIngestRecipes(t *testing.T) {
	cfg := parseConfig(t, `
auditrelay.ingest { enabled = true, listen = "0.0.0.0:9465", auth { type = bearer, key = "ingest-key-1" } }
webhooks.thehive.url = "http://127.0.0.1:9465/"
notification.webhook.endpoints = [ { name = th4, url = "http://localhost:9465/x" } ]
`)
	var out strings.Builder
	if err := describe(cfg, &out, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`webhooks { auditrelay { url = "http://127.0.0.1:9465/" } }`,
		`notification.webhook.endpoints = [ { name = auditrelay, url = "http://127.0.0.1:9465/", version = 0, wsConfig {}, auth { type = bearer, key = "****" },`,
		`PUT -H 'Content-Type: application/json' https://<thehive>/api/config/organisation/notification`,
		`'{"value":[{"delegate":false,"trigger":{"name":"AnyEvent"},"notifier":{"name":"webhook","endpoint":"auditrelay"}}]}'`,
		`whose endpoint has URL http://127.0.0.1:9465/, method POST, auth Bearer, token ****`,
		`hop       thehive (webhooks.thehive) is this listener: not delivered to`,
		`hop       th4 (notification.webhook.endpoints[0]) is this listener: not delivered to`,
		`webhook th4 (the ingest hop: not delivered to)`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %s\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "ingest-key-1") {
		t.Error("check output shows the ingest key")
	}
}
