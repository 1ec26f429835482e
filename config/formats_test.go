package config

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFormatsGood reads the format extensions (SPEC §2.3): template file
// resolved against the config's directory and loaded, splunk metadata over
// its defaults, the new filter keys.
func TestFormatsGood(t *testing.T) {
	c, err := Load("testdata/formats.good.conf")
	if err != nil {
		t.Fatal(err)
	}
	chat, hec, teams := c.Webhook("chat"), c.Webhook("hec"), c.Webhook("teams")
	if want, _ := filepath.Abs("testdata/templates/good.tmpl"); chat.Template.File != want {
		t.Errorf("template.file = %q, want %q", chat.Template.File, want)
	}
	if !strings.Contains(chat.Template.Text, "jsonString") || !chat.Template.IsJSON() || chat.Template.IsNDJSON() {
		t.Errorf("template = %+v, want the file's text and a JSON content type", chat.Template)
	}
	if got := chat.Filter; got.Expr != `objectType == "case_artifact" && details.ioc == true` ||
		!slices.Equal(got.ExcludeObjectTypes, []string{"case_task_log"}) {
		t.Errorf("filter = %+v", got)
	}
	if got, want := hec.Splunk, (Splunk{Source: "auditrelay", Sourcetype: "thehive:audit", Index: "soc"}); got != want {
		t.Errorf("splunk = %+v, want %+v", got, want)
	}
	if teams.Format != "teams" || !slices.Equal(teams.Filter.ExcludeObjectTypes, []string{"Observable"}) {
		t.Errorf("teams = %s %+v", teams.Format, teams.Filter)
	}
	var out bytes.Buffer
	if err := c.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`template { file = "` + chat.Template.File + `", contentType = "application/json; charset=utf-8" }`,
		`expr = "objectType == \"case_artifact\" && details.ioc == true"`,
		`excludeObjectTypes = ["case_task_log"]`,
		`splunk { source = "auditrelay", sourcetype = "thehive:audit", index = "soc", host = "" }`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("check output lacks %s:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "11111111-2222") {
		t.Error("check output shows the HEC token")
	}
}

// TestTemplateContentTypes tells JSON bodies, which must be JSON, from
// NDJSON ones and others.
func TestTemplateContentTypes(t *testing.T) {
	for _, tt := range []struct {
		ct           string
		json, ndjson bool
	}{
		{"application/json", true, false},
		{"Application/JSON; charset=utf-8", true, false},
		{"application/vnd.api+json", true, false},
		{"application/x-ndjson", false, true},
		{"text/plain", false, false},
	} {
		tp := Template{ContentType: tt.ct}
		if tp.IsJSON() != tt.json || tp.IsNDJSON() != tt.ndjson {
			t.Errorf("%q: IsJSON %v IsNDJSON %v, want %v %v", tt.ct, tp.IsJSON(), tp.IsNDJSON(), tt.json, tt.ndjson)
		}
	}
}
