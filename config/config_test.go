package config

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.bad.errors")

// testdataDir is the absolute testdata directory, written $DIR in goldens.
func testdataDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	dir := testdataDir(t)
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := Load(file)
			if err == nil {
				t.Fatal("Load succeeded, want errors")
			}
			got := strings.ReplaceAll(err.Error(), dir, "$DIR") + "\n"
			golden := strings.TrimSuffix(file, ".conf") + ".errors"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// TestGoodFiles loads each good file and checks the values it sets, the
// defaults it leaves, and its warnings.
func TestGoodFiles(t *testing.T) {
	dir := testdataDir(t)
	for _, tt := range []struct {
		file  string
		check func(t *testing.T, c *Config)
	}{
		{"thehive3.good.conf", func(t *testing.T, c *Config) { checkTheHive3(t, c, dir) }},
		{"thehive4.good.conf", checkTheHive4},
		{"pem-inline.good.conf", checkPEMInline},
		{"ingest.good.conf", checkIngest},
	} {
		t.Run(tt.file, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.File != filepath.Join(dir, tt.file) {
				t.Errorf("File = %q", c.File)
			}
			tt.check(t, c)
		})
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func eqList[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func checkTheHive3(t *testing.T, c *Config, dir string) {
	names := []string{}
	for _, w := range c.Webhooks {
		names = append(names, w.Name)
	}
	eqList(t, "names", names, []string{"legacy", "siem"})
	s := c.Webhook("siem")
	eq(t, "KeyPath", s.KeyPath, "webhooks.siem")
	eq(t, "proxy.host (play.ws)", s.WS.Proxy.Host, "proxy.corp.example.org")
	eq(t, "proxy.port (own ws)", s.WS.Proxy.Port, 8080)
	eq(t, "proxy.protocol (default)", s.WS.Proxy.Protocol, ProxyHTTP)
	eq(t, "proxy.password (play.ws)", string(s.WS.Proxy.Password), "proxy-secret-1")
	eq(t, "useragent (play.ws)", s.WS.UserAgent, "TheHive/3.4.2")
	eq(t, "timeout.connection (play.ws)", s.WS.Timeout.Connection, 5*time.Second)
	eq(t, "timeout.request (webhooks.ws)", s.WS.Timeout.Request, 20*time.Second)
	eq(t, "timeout.idle (default)", s.WS.Timeout.Idle, 30*time.Second)
	eqList(t, "enabledProtocols", s.WS.SSL.EnabledProtocols, []TLSVersion{tls.VersionTLS12, tls.VersionTLS13})
	eq(t, "stores", len(s.WS.SSL.TrustManager.Stores), 1)
	st := s.WS.SSL.TrustManager.Stores[0]
	eq(t, "store", st, Store{Type: "PEM", Path: filepath.Join(dir, "ca.pem"), KeyPath: "webhooks.siem.ws.ssl.trustManager.stores[0]"})
	eq(t, "auth", s.Auth, Auth{Type: "bearer", Key: "siem-token-2"})
	eq(t, "X-Tenant", s.Headers["X-Tenant"], "soc-1")
	eq(t, "secrets", len(s.Signing.Secrets), 2)
	eqList(t, "operations", s.Filter.Operations, []string{"Creation", "Update"})
	eqList(t, "objectTypes", s.Filter.ObjectTypes, []string{"case", "case_*"})
	eq(t, "batch", s.Batch, Batch{MaxEntries: 10, MaxWait: 500 * time.Millisecond})
	eq(t, "start", s.Delivery.Start, Start{Mode: "time", Time: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)})
	eq(t, "orderBy", s.Delivery.OrderBy, "objectId")
	eq(t, "retry", s.Delivery.Retry, Retry{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: 10 * time.Minute, MaxAge: 30 * 24 * time.Hour})

	l := c.Webhook("legacy")
	eq(t, "legacy enabled", l.Enabled, false)
	eq(t, "legacy format", l.Format, "slack")
	eq(t, "legacy cert", l.WS.SSL.TrustManager.Stores[0], Store{Type: "PEM", Path: filepath.Join(dir, "ca.pem"), KeyPath: "webhooks.legacy.cert"})
	eqList(t, "warnings", c.Warnings, []string{
		"play.ws.ahc: ignored, not supported by auditrelay (AsyncHttpClient settings)",
		"play.ws.cache: ignored by auditrelay",
		"play.ws.ssl.enabledProtocols[1]: not supported by auditrelay (TLSv1.1 is insecure; use TLSv1.2 or TLSv1.3), ignored",
		"play.ws.ssl.loose.allowWeakCiphers: ignored by auditrelay",
		"webhooks.legacy.cert: deprecated, use ws.ssl.trustManager.stores",
	})
	eq(t, "auditrelay (defaults)", c.Auditrelay.NATS.URL, Default().NATS.URL)
}

func checkTheHive4(t *testing.T, c *Config) {
	eq(t, "webhooks", len(c.Webhooks), 2)
	s := c.Webhook("soar")
	eq(t, "KeyPath", s.KeyPath, "notification.webhook.endpoints[0]")
	eq(t, "auth", s.Auth, Auth{Type: "basic", Username: "relay", Password: "soar-secret-4"})
	eqList(t, "included", s.Filter.IncludedOrganisations, []string{"soc", "cert"})
	eqList(t, "excluded", s.Filter.ExcludedOrganisations, []string{"admin"})
	eq(t, "loose", s.WS.SSL.Loose.DisableHostnameVerification, true)
	chat := c.Webhook("chat ops")
	eq(t, "chat KeyPath", chat.KeyPath, "notification.webhook.endpoints[1]")
	eq(t, "chat token", chat.Token(), "chat_ops")
	eq(t, "chat auth", chat.Auth, Auth{Type: "key", Key: "chat-secret-5"})
	eq(t, "chat orderBy", chat.Delivery.OrderBy, "none")
	n := c.Auditrelay.NATS
	eq(t, "url (servers replace it)", n.URL, "")
	eqList(t, "servers", n.Servers, []string{"nats://n1.example.org:4222", "nats://n2.example.org:4222"})
	eq(t, "stream", n.Stream, Stream{Name: "TH4_AUDIT", Create: true, MaxAge: 7 * 24 * time.Hour, Replicas: 3})
	eq(t, "maxEntryBytes", n.MaxEntryBytes, 512<<10)
	eq(t, "log", c.Auditrelay.Log, Log{Level: "debug", Format: "json"})
	eqList(t, "warnings", c.Warnings, []string{
		"notification.webhook.endpoints[0].wsConfig.ssl.loose.disableHostnameVerification: webhook soar: the host name is not verified",
	})
}

func checkPEMInline(t *testing.T, c *Config) {
	s := c.Webhook("siem")
	want := "-----BEGIN CERTIFICATE-----\nMIIBjzCCATWgAwIBAgIUYMcNRToL8Fb146buB0f5Ynz6BsAwCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n"
	eq(t, "data", s.WS.SSL.TrustManager.Stores[0].Data, want)
	eq(t, "type", s.WS.SSL.TrustManager.Stores[0].Type, "PEM")
	eq(t, "header", s.Headers["X-Quote"], `say "hi" # not a comment // nor this`)
	eq(t, "log.format after the string", c.Auditrelay.Log.Format, "text")
}

// TestExample loads the shipped example: it must keep working.
func TestExample(t *testing.T) {
	c, err := Load("../examples/application.conf")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "webhooks", len(c.Webhooks), 3)
	eq(t, "the hop", c.Webhook("auditrelay").IngestHop, true)
	eq(t, "ingest", c.Auditrelay.Ingest.Enabled, true)
	for _, tt := range []struct{ name, url, keyPath string }{
		{"siem", "http://127.0.0.1:8080/siem", "webhooks.siem"},
		{"soar", "http://127.0.0.1:8080/soar", "notification.webhook.endpoints[0]"},
	} {
		w := c.Webhook(tt.name)
		if w == nil {
			t.Fatalf("no webhook %s", tt.name)
		}
		eq(t, tt.name+" url", w.URL, tt.url)
		eq(t, tt.name+" KeyPath", w.KeyPath, tt.keyPath)
		eq(t, tt.name+" start", w.Delivery.Start.Mode, "all")
	}
	eq(t, "embedded", c.Auditrelay.NATS.Embedded.Enabled, true)
	eq(t, "admin", c.Auditrelay.Admin.Listen, "127.0.0.1:9464")
	eq(t, "log.format", c.Auditrelay.Log.Format, "text")
	eqList(t, "warnings", c.Warnings, []string{"webhooks.auditrelay.url: webhook auditrelay is auditrelay's own ingest listener (auditrelay.ingest.listen): TheHive's hop into auditrelay, not delivered to"})
}

// TestLayering sets one ws key in each layer and leaves the rest to the
// defaults: each key comes from the highest layer that sets it.
func TestLayering(t *testing.T) {
	conf := `
play.ws { timeout.connection = 1s, timeout.idle = 2s, timeout.request = 3s, useragent = play
  ssl.trustManager.stores = [ { type = PEM, data = "play" }, { type = PEM, data = "play2" } ] }
webhooks {
  ws { timeout.idle = 20s, timeout.request = 30s, ssl.trustManager.stores = [ { type = PEM, data = "hooks" } ] }
  a { url = "https://a/", ws.timeout.request = 300s }
  b { url = "https://b/" }
}
notification.webhook.endpoints = [ { name = c, url = "https://c/", wsConfig.timeout.idle = 9s } ]
`
	c, err := Parse([]byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultWS()
	for _, tt := range []struct {
		name       string
		want       Timeout
		stores     []string
		followRedi bool
	}{
		{"a", Timeout{Connection: time.Second, Idle: 20 * time.Second, Request: 300 * time.Second}, []string{"hooks"}, def.FollowRedirects},
		{"b", Timeout{Connection: time.Second, Idle: 20 * time.Second, Request: 30 * time.Second}, []string{"hooks"}, def.FollowRedirects},
		{"c", Timeout{Connection: time.Second, Idle: 9 * time.Second, Request: 3 * time.Second}, []string{"play", "play2"}, def.FollowRedirects},
	} {
		w := c.Webhook(tt.name).WS
		eq(t, tt.name+" timeout", w.Timeout, tt.want)
		var got []string
		for _, s := range w.SSL.TrustManager.Stores {
			got = append(got, s.Data)
		}
		eqList(t, tt.name+" stores (a list is one key)", got, tt.stores)
		eq(t, tt.name+" useragent (play.ws)", w.UserAgent, "play")
		eq(t, tt.name+" followRedirects (default)", w.FollowRedirects, tt.followRedi)
		eq(t, tt.name+" ssl.protocol (default)", w.SSL.Protocol, def.SSL.Protocol)
	}
}

func TestEnvSubstitution(t *testing.T) {
	t.Setenv("AR_TEST_TOKEN", `tok\en"1`)
	t.Setenv("AR_TEST_ENABLED", "false")
	conf := `
webhooks.siem {
  url = "https://siem/"
  auth { type = bearer, key = ${?AR_TEST_TOKEN} }
  enabled = ${?AR_TEST_ENABLED}
  format = slack
  format = ${?AR_TEST_UNSET_FORMAT}
  delivery.maxInFlight = ${?AR_TEST_UNSET_MAX}
}`
	c, err := Parse([]byte(conf), "")
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhook("siem")
	eq(t, "key (raw from the environment)", string(w.Auth.Key), `tok\en"1`)
	eq(t, "enabled", w.Enabled, false)
	eq(t, "format (unset ${?X} keeps the earlier value)", w.Format, "slack")
	eq(t, "maxInFlight (unset ${?X}: default)", w.Delivery.MaxInFlight, DefaultWebhook().Delivery.MaxInFlight)
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("conf/hooks.conf", "{\n  webhooks.siem { url = \"https://siem/\", ws.ssl.trustManager.stores = [ { type = PEM, data = \"\"\"A\nB\"\"\" } ] }\n  include \"more\"\n}\n")
	write("conf/more.conf", "webhooks.siem.format = slack\n")
	write("conf/ca.pem", "not parsed")
	write("main.conf", "include required(file(\"conf/hooks.conf\"))\nwebhooks.siem.format = thin # overrides the include\ninclude \"absent.conf\"\nwebhooks.siem.cert = \"conf/ca.pem\"\nauditrelay.admin.fetch { key = k, secret = s }\n")
	c, err := Load(filepath.Join(dir, "main.conf"))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhook("siem")
	if w == nil {
		t.Fatal("no webhook siem")
	}
	eq(t, "format (after the include wins)", w.Format, "thin")
	eq(t, "data (normalised in the included file)", w.WS.SSL.TrustManager.Stores[0].Data, "A\nB")
	eq(t, "cert (relative to the top-level file)", w.WS.SSL.TrustManager.Stores[1].Path, filepath.Join(dir, "conf/ca.pem"))

	write("bad.conf", "include required(\"nope.conf\")\n")
	if _, err := Load(filepath.Join(dir, "bad.conf")); err == nil || !strings.Contains(err.Error(), "nope.conf") {
		t.Errorf("required include of a missing file: err = %v", err)
	}
	write("loop.conf", "include \"loop.conf\"\n")
	if _, err := Load(filepath.Join(dir, "loop.conf")); err == nil || !strings.Contains(err.Error(), "a cycle?") {
		t.Errorf("include cycle: err = %v", err)
	}
}

func TestSyntaxErrorNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "inc.conf")
	if err := os.WriteFile(file, []byte("a = 1\nb = \"\"\"x\ny\"\"\"\nc = = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Parse([]byte("include \"inc.conf\"\n"), filepath.Join(dir, "main.conf"))
	if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), "at: 4:") {
		t.Errorf("err = %v, want the included file and line 4", err)
	}
}

func TestSentinels(t *testing.T) {
	_, err := Load("testdata/many.bad.conf")
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %T, want ErrorList", err)
	}
	for _, sentinel := range []error{ErrUnknownKey, ErrRequired, ErrInvalid, ErrUnsupported, ErrExclusive} {
		if !errors.Is(err, sentinel) {
			t.Errorf("errors.Is(err, %v) = false", sentinel)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path == "" {
		t.Errorf("errors.As FieldError: %v", fe)
	}
	_, err = Load("testdata/names.bad.conf")
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("names: %v, want ErrDuplicate", err)
	}
	_, err = Load("testdata/stores.bad.conf")
	if !errors.Is(err, ErrFile) {
		t.Errorf("stores: %v, want ErrFile", err)
	}
}

// TestPrintHidesSecrets prints files holding a value for every kind of
// secret and looks for each value in the output.
func TestPrintHidesSecrets(t *testing.T) {
	conf := `
auditrelay.nats.auth.token = "nats-token-8"
auditrelay.nats.tls.keyManager.stores = [ { type = PKCS12, data = "x", password = "store-secret-9" } ]
auditrelay.admin.fetch { key = "fetch-key-10", secret = "fetch-secret-11" }
webhooks.h { url = "https://user:url-secret-12@h.example.org/p?token=url-secret-13", format = thin }
webhooks.slack { url = "https://hooks.slack.com/services/T0001/B0002/slack-path-secret-14", format = slack }
`
	var out bytes.Buffer
	for _, load := range []func() (*Config, error){
		func() (*Config, error) { return Load("testdata/thehive3.good.conf") },
		func() (*Config, error) { return Load("testdata/thehive4.good.conf") },
		func() (*Config, error) { return Parse([]byte(conf), "") },
	} {
		c, err := load()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Print(&out); err != nil {
			t.Fatal(err)
		}
	}
	text := out.String()
	for _, secret := range []string{
		"proxy-secret-1", "siem-token-2", "header-secret-3", "soar-secret-4", "chat-secret-5",
		"nats-secret-6", "fetch-secret-7", "nats-token-8", "store-secret-9", "fetch-key-10",
		"fetch-secret-11", "url-secret-12", "url-secret-13", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		"slack-path-secret-14", "/hooks/thehive", "soc-1", "services/T0001",
	} {
		if strings.Contains(text, secret) {
			t.Errorf("Print shows %q", secret)
		}
	}
	for _, want := range []string{
		`url = "https://siem.corp.example.org:443/****"`,
		`"X-Tenant" = "****"`,
		`password = "****"`,
		`url = "https://h.example.org:443/****"`,
		`url = "https://hooks.slack.com:443/****"`,
		`signing { secret = ["****", "****"] }`,
		"siem {  # webhooks.siem",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Print lacks %s", want)
		}
	}
}

// TestRedactURL: every URL shows as scheme://host:port/****, the port
// filled in from the scheme when the URL has none.
func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"https://hooks.slack.com/services/T0/B0/XXXX", "https://hooks.slack.com:443/****"},
		{"https://discord.com/api/webhooks/1/tok?wait=true", "https://discord.com:443/****"},
		{"http://user:pw@siem.example.org:8080/p?token=t#frag", "http://siem.example.org:8080/****"},
		{"https://siem.example.org", "https://siem.example.org:443/****"},
		{"http://[::1]/hook", "http://[::1]:80/****"},
		{"https://[fe80::1]:8443/hook", "https://[fe80::1]:8443/****"},
		{"nats://user:pw@127.0.0.1", "nats://127.0.0.1:4222/****"},
		{"tls://nats.example.org:4443", "tls://nats.example.org:4443/****"},
		{"ftp://user:pw@h.example.org/x?token=t", "ftp://h.example.org/****"},
		{"::not a url", "<invalid URL>"},
		{"/relative/path?token=t", "<invalid URL>"},
		{"", "<invalid URL>"},
	} {
		if got := RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseUnits(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"500ms", 500 * time.Millisecond}, {"30s", 30 * time.Second}, {"5m", 5 * time.Minute},
		{"30d", 30 * 24 * time.Hour}, {"72h", 72 * time.Hour}, {"30 days", 30 * 24 * time.Hour},
		{"10 minutes", 10 * time.Minute}, {"1.5h", 90 * time.Minute}, {"250", 250 * time.Millisecond},
	} {
		got, err := parseDuration(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseDuration(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, tt := range []struct {
		in   string
		want int64
	}{
		{"1MiB", 1 << 20}, {"1M", 1 << 20}, {"512k", 512 << 10}, {"4096", 4096}, {"1 MiB", 1 << 20}, {"2MB", 2e6},
	} {
		got, err := parseSize(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseSize(%q) = %v, %v, want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"5 fortnights", "abc", ""} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) succeeded", bad)
		}
	}
}

// TestUnitsInFiles reads durations and sizes the way HOCON writes them,
// through the library, which gives some as durations and others as text.
func TestUnitsInFiles(t *testing.T) {
	for _, tt := range []struct {
		conf string
		want int64
		dur  time.Duration
	}{
		{"maxEntryBytes = 1MiB, stream.maxAge = 30d", 1 << 20, 30 * 24 * time.Hour},
		{"maxEntryBytes = 1M, stream.maxAge = 30 days", 1 << 20, 30 * 24 * time.Hour},
		{"maxEntryBytes = 512k, stream.maxAge = 72h", 512 << 10, 72 * time.Hour},
		{"maxEntryBytes = 2048, stream.maxAge = 10 minutes", 2048, 10 * time.Minute},
	} {
		c, err := Parse([]byte("auditrelay.nats { "+tt.conf+" }"), "")
		if err != nil {
			t.Errorf("%s: %v", tt.conf, err)
			continue
		}
		eq(t, tt.conf+": maxEntryBytes", c.Auditrelay.NATS.MaxEntryBytes, tt.want)
		eq(t, tt.conf+": maxAge", c.Auditrelay.NATS.Stream.MaxAge, tt.dur)
	}
}

func TestClosest(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want string
	}{
		{"post", "port"}, {"userAgent", "useragent"}, {"conection", "connection"}, {"zzz", ""}, {"ur", "url"},
	} {
		got := closest(tt.key, []string{"host", "port", "useragent", "connection", "url"})
		eq(t, tt.key, got, tt.want)
	}
}

// TestExampleEntries checks that every line of examples/entries.jsonl is an
// entry auditrelay delivers (SPEC §1).
func TestExampleEntries(t *testing.T) {
	data, err := os.ReadFile("../examples/entries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 10 {
		t.Errorf("%d entries, want about 10", len(lines))
	}
	for i, line := range lines {
		var e struct{ Operation, ObjectType, ObjectID string }
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Errorf("line %d: %v", i+1, err)
			continue
		}
		if NormaliseOperation(e.Operation) == "" || e.ObjectType == "" || e.ObjectID == "" {
			t.Errorf("line %d: %+v is not a valid entry", i+1, e)
		}
	}
}

func TestSubjectsOverlap(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{"auditrelay.deadletter.>", "thehive.audit.>", false},
		{"audit.deadletter.>", "audit.>", true},
		{"audit.deadletter.>", "audit.*", false},
		{"audit.deadletter.>", "audit.*.x", true},
		{"a.b", "a.b", true},
		{"a.b", "a.c", false},
		{"a.*", "a.b.c", false},
		{"dl.>", ">", true},
	} {
		if got := SubjectsOverlap(tt.a, tt.b); got != tt.want {
			t.Errorf("SubjectsOverlap(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func checkIngest(t *testing.T, c *Config) {
	in := c.Auditrelay.Ingest
	eq(t, "enabled", in.Enabled, true)
	eq(t, "listen", in.Listen, "0.0.0.0:9465")
	eq(t, "auth", in.Auth, Auth{Type: "basic", Username: "thehive", Password: "ingest-secret-1"})
	eq(t, "HTTPS", in.HTTPS(), true)
	eq(t, "trust stores", len(in.TLS.TrustManager.Stores), 1)
	eq(t, "maxEntryBytes (nats.maxEntryBytes)", in.MaxEntryBytes, 512<<10)
	for name, hop := range map[string]bool{"auditrelay": true, "auditrelay4": true, "siem": false, "local": false} {
		eq(t, name+" IngestHop", c.Webhook(name).IngestHop, hop)
	}
	eqList(t, "warnings", c.Warnings, []string{
		"notification.webhook.endpoints[0].url: webhook auditrelay4 is auditrelay's own ingest listener (auditrelay.ingest.listen): TheHive's hop into auditrelay, not delivered to",
		"webhooks.auditrelay.url: webhook auditrelay is auditrelay's own ingest listener (auditrelay.ingest.listen): TheHive's hop into auditrelay, not delivered to",
	})
}

// TestIngestDefaults: disabled, on its own port, under the default
// subject, and as large as the stream's entries unless set.
func TestIngestDefaults(t *testing.T) {
	c, err := Parse([]byte(`auditrelay.nats.maxEntryBytes = 2MiB
webhooks.self.url = "http://127.0.0.1:9465/"`), "")
	if err != nil {
		t.Fatal(err)
	}
	in := c.Auditrelay.Ingest
	eq(t, "enabled", in.Enabled, false)
	eq(t, "listen", in.Listen, "127.0.0.1:9465")
	eq(t, "subject", in.Subject, "thehive.audit")
	eq(t, "auth", in.Auth.Type, "none")
	eq(t, "maxEntryBytes", in.MaxEntryBytes, 2<<20)
	eq(t, "a disabled ingest has no hop", c.Webhook("self").IngestHop, false)
}

func TestIsIngestURL(t *testing.T) {
	for _, tt := range []struct {
		listen, url string
		want        bool
	}{
		{"127.0.0.1:9465", "http://127.0.0.1:9465/", true},
		{"127.0.0.1:9465", "http://localhost:9465/x?y=1", true},
		{"127.0.0.1:9465", "https://[::1]:9465", true},
		{"localhost:9465", "http://127.0.0.1:9465", true},
		{"[::1]:9465", "http://localhost:9465", true},
		{":9465", "http://127.0.0.1:9465", true},
		{"0.0.0.0:9465", "http://localhost:9465", true},
		{"10.0.0.5:9465", "http://10.0.0.5:9465", true},
		{"127.0.0.1:80", "http://localhost/", true},
		{"127.0.0.1:443", "https://localhost/", true},
		{"127.0.0.1:9465", "http://127.0.0.1:9466", false},
		{"127.0.0.1:9465", "http://siem.example.org:9465", false},
		{"10.0.0.5:9465", "http://localhost:9465", false},
		{"127.0.0.1:0", "http://127.0.0.1:0", false},
		{"127.0.0.1:9465", "not a url", false},
	} {
		if got := IsIngestURL(tt.listen, tt.url); got != tt.want {
			t.Errorf("IsIngestURL(%q, %q) = %v, want %v", tt.listen, tt.url, got, tt.want)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tt := range []struct {
		pattern, subject string
		want             bool
	}{
		{"thehive.audit.>", "thehive.audit.x", true},
		{"thehive.audit.>", "thehive.audit", false},
		{"thehive.*.x", "thehive.audit.x", true},
		{"thehive.*", "thehive.audit.x", false},
		{">", "a.b", true},
		{"thehive.audit.x", "thehive.audit.x", true},
		{"thehive.audit.y", "thehive.audit.x", false},
	} {
		if got := SubjectMatches(tt.pattern, tt.subject); got != tt.want {
			t.Errorf("SubjectMatches(%q, %q) = %v, want %v", tt.pattern, tt.subject, got, tt.want)
		}
	}
}

// TestHeadersAndAuthChecked: the problems of headers.bad.conf carry their
// sentinel errors, and none of them shows a configured value (any header,
// like auth, may carry a credential).
func TestHeadersAndAuthChecked(t *testing.T) {
	_, err := Load("testdata/headers.bad.conf")
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, target := range []error{ErrReservedHeader, ErrInvalidHeader, ErrAuth, ErrRequired} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = false", target)
		}
	}
	for _, value := range []string{"X-Injected", "other", "text/plain", "a\nb"} {
		if strings.Contains(err.Error(), value) {
			t.Errorf("the errors show a configured value %q:\n%v", value, err)
		}
	}
	// With auth none, headers may carry their own Authorization, and an
	// auth type is read in any case.
	c, err := Parse([]byte(`webhooks {
  hec { url = "https://hec.example.org/", headers { Authorization = "Splunk 1234" } }
  siem { url = "https://siem.example.org/", auth { type = Bearer, key = k } }
}`), "")
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "hec Authorization", c.Webhook("hec").Headers["Authorization"], "Splunk 1234")
	eq(t, "siem auth type", c.Webhook("siem").Auth.Type, AuthBearer)
}

// TestFormatWords: every format reads in any case; another word is an
// error naming the key.
func TestFormatWords(t *testing.T) {
	for _, f := range Formats {
		hook := fmt.Sprintf(`webhooks.w { url = "https://w.example.org/", format = %s }`, strings.ToUpper(string(f)))
		if f == FormatTemplate || f == FormatThin {
			continue // need a template file, fetch credentials: see formats_test.go and many.bad.conf
		}
		c, err := Parse([]byte(hook), "")
		if err != nil {
			t.Fatalf("format %s: %v", f, err)
		}
		eq(t, "format", c.Webhook("w").Format, f)
	}
	for _, word := range []string{"json", "ndjson"} {
		_, err := Parse([]byte(`webhooks.w { url = "https://w.example.org/", format = `+word+` }`), "")
		if err == nil || !strings.Contains(err.Error(), "webhooks.w.format: ") {
			t.Errorf("format %s: %v, want an error at webhooks.w.format", word, err)
		}
	}
}
