package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// referenceDoc is the page whose `<!-- config-reference -->` block is the
// configuration reference.
const referenceDoc = "../docs/configuration.md"

// referenceFile is where the block is parsed as if it were: no store or
// template it names exists there.
const referenceFile = "/nonexistent/application.conf"

// referenceBlock returns the first hocon block after the marker.
func referenceBlock(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(referenceDoc)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), "<!-- config-reference -->")
	if i < 0 {
		t.Fatalf("no <!-- config-reference --> in %s", referenceDoc)
	}
	block := regexp.MustCompile("(?s)```hocon\n(.*?)```").FindStringSubmatch(string(doc[i:]))
	if block == nil {
		t.Fatalf("no hocon block after <!-- config-reference --> in %s", referenceDoc)
	}
	return block[1]
}

// parseReference parses block with a valid value for every ${?VAR} it
// names, and fails on any problem but the example files not existing.
func parseReference(t *testing.T, block string) *Config {
	t.Helper()
	for _, v := range regexp.MustCompile(`\$\{\?([A-Z_]+)\}`).FindAllStringSubmatch(block, -1) {
		t.Setenv(v[1], "whsec_"+strings.Repeat("QUJD", 8)) // a valid value for every kind of secret
	}
	cfg, err := Parse([]byte(block), referenceFile)
	var list ErrorList
	if err != nil && !errors.As(err, &list) {
		t.Fatalf("the reference does not parse: %v", err)
	}
	for _, fe := range list {
		if !errors.Is(fe, ErrFile) {
			t.Errorf("the reference: %v", fe)
		}
	}
	if len(list) == 0 {
		t.Error("the example store and template paths should be reported missing; is the block still read?")
	}
	return cfg
}

// TestReferenceParses keeps docs/configuration.md's reference true to the
// code: its HOCON block must parse with no problem other than the example
// files not existing here.
func TestReferenceParses(t *testing.T) {
	cfg := parseReference(t, referenceBlock(t))
	var names []string
	for _, w := range cfg.Webhooks {
		names = append(names, w.Name)
	}
	if got, want := strings.Join(names, " "), "chat hec siem soar"; got != want {
		t.Errorf("webhooks of the reference: got %q, want %q", got, want)
	}
}

// TestReferenceShowsTheDefaults compares every value the reference shows as
// a default with Default and DefaultWebhook. The page says which values are
// not defaults; referenceDiffs skips exactly those.
func TestReferenceShowsTheDefaults(t *testing.T) {
	block := referenceBlock(t)
	for _, d := range referenceDiffs(parseReference(t, block)) {
		t.Errorf("the reference shows a value that is not the default: %s", d)
	}
	// The comparison itself must be able to fail: a block with one wrong
	// default, each in turn, is caught.
	for _, c := range []struct{ from, to string }{
		{"maxAttempts = 15", "maxAttempts = 14"},
		{"idle = 30s", "idle = 31s"},
		{`listen = "127.0.0.1:9464"`, `listen = "127.0.0.1:9465"`},
		{"orderBy = rootId", "orderBy = objectId"},
		{"maxAge = 30d", "maxAge = 7d"},
		{"followRedirects = true", "followRedirects = false"},
		{`sourcetype = "thehive:audit"`, `sourcetype = "thehive"`},
		{`contentType = "application/json"`, `contentType = "application/x-ndjson"`},
		{"wsConfig { timeout.request = 30s }", "wsConfig { timeout.request = 10s }"},
	} {
		if strings.Count(block, c.from) != 1 {
			t.Errorf("%q should appear once in the reference", c.from)
			continue
		}
		wrong := parseReference(t, strings.Replace(block, c.from, c.to, 1))
		if len(referenceDiffs(wrong)) == 0 {
			t.Errorf("a reference showing %q instead of %q passed the comparison", c.to, c.from)
		}
	}
}

// referenceDiffs lists every value of cfg that differs from the defaults,
// except those docs/configuration.md names as not defaults: url, auth,
// headers, signing, filter, the proxy, the store entries and the template
// file, the NATS auth and admin.fetch credentials, TheHive 4's name and
// version (not kept), and format where the webhook shows its format's block
// (splunk, template).
func referenceDiffs(cfg *Config) []string {
	var diffs []string
	got, want := cfg.Auditrelay, Default()
	want.NATS.Embedded.StoreDir = filepath.Join(filepath.Dir(referenceFile), want.NATS.Embedded.StoreDir)
	got.NATS.Auth, got.Admin.Fetch = want.NATS.Auth, want.Admin.Fetch
	diff("auditrelay", reflect.ValueOf(got), reflect.ValueOf(want), &diffs)
	for _, w := range cfg.Webhooks {
		want := DefaultWebhook()
		want.Name, want.KeyPath, want.URL, want.WS.KeyPath = w.Name, w.KeyPath, w.URL, w.WS.KeyPath
		want.Auth, want.Headers, want.Signing, want.Filter = w.Auth, w.Headers, w.Signing, w.Filter
		want.WS.Proxy = w.WS.Proxy
		want.WS.SSL.TrustManager, want.WS.SSL.KeyManager = w.WS.SSL.TrustManager, w.WS.SSL.KeyManager
		want.Template.File, want.Template.Text = w.Template.File, w.Template.Text
		if w.Format == FormatSplunk || w.Format == FormatTemplate {
			want.Format = w.Format
		}
		diff(w.KeyPath, reflect.ValueOf(w), reflect.ValueOf(want), &diffs)
	}
	return diffs
}

// diff adds to out the path of every field where got and want differ. An
// empty list equals a nil one; structs of this package are compared field
// by field, so the path names the field.
func diff(path string, got, want reflect.Value, out *[]string) {
	switch {
	case got.Kind() == reflect.Struct && got.Type().PkgPath() == reflect.TypeFor[Config]().PkgPath():
		for i := range got.NumField() {
			diff(path+"."+got.Type().Field(i).Name, got.Field(i), want.Field(i), out)
		}
	case (got.Kind() == reflect.Slice || got.Kind() == reflect.Map) && got.Len() == 0 && want.Len() == 0:
	case !reflect.DeepEqual(got.Interface(), want.Interface()):
		*out = append(*out, fmt.Sprintf("%s = %#v, the default is %#v", path, got.Interface(), want.Interface()))
	}
}
