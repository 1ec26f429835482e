package sink

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// templateWebhook loads a webhook `tpl` with format = template over text,
// and more keys inside the webhook's block.
func templateWebhook(t testing.TB, text, more string) (*config.Webhook, error) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "body.tmpl"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := `webhooks.tpl { url = "https://x.example.org/", format = template, template.file = body.tmpl` + "\n" + more + "\n}"
	path := filepath.Join(dir, "application.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg.Webhook("tpl"), nil
}

func templateEncoder(t testing.TB, text, more string) (*Encoder, error) {
	t.Helper()
	wh, _ := templateWebhook(t, text, more)
	return NewEncoder(wh)
}

// TestTemplateData: the data and functions a template has (SPEC §4).
func TestTemplateData(t *testing.T) {
	enc, err := templateEncoder(t, `{"webhook": {{ jsonString .Webhook }}, "seq": {{ .Seq }}, "time": {{ .Time.UTC.Format "2006-01-02T15:04:05Z07:00" | jsonString }},
"op": {{ jsonString .Operation }}, "type": {{ .Entry.objectType | jsonString }}, "start": {{ .Entry.startDate }},
"title": {{ jsonString (dig "details" "title" "" .Entry) }}, "entry": {{ json .Raw }}, "details": {{ json .Entry.details }},
"n": {{ len .Entries }}, "upper": {{ upper .Entry.objectId | jsonString }}, "quote": {{ jsonString "<\"&\">" }}}`, "")
	if err != nil {
		t.Fatal(err)
	}
	m := wireMessages(t)[7] // TheHive 4: operation "create"
	m.Time = time.Date(2020, 7, 16, 11, 46, 39, 0, time.UTC)
	body, err := enc.Body(nil, []*audit.Message{m})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	want := map[string]any{"webhook": "tpl", "seq": 108.0, "time": "2020-07-16T11:46:39Z", "op": "Creation", "type": "Case",
		"start": 1594899999424.0, "title": "Phishing wave", "n": 1.0, "upper": "~4264", "quote": `<"&">`}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %#v, want %#v", k, got[k], v)
		}
	}
	if e, _ := json.Marshal(got["entry"]); !bytes.Contains(body, []byte(`"entry": `+string(m.Entry.Raw))) || len(e) < 10 {
		t.Errorf("entry is not the raw entry embedded:\n%s", body)
	}
	if d, _ := got["details"].(map[string]any); d["severity"] != 3.0 {
		t.Errorf("details = %v", got["details"])
	}
	if enc.ContentType() != "application/json" {
		t.Errorf("content type %q", enc.ContentType())
	}
}

// TestTemplateBatch: a batch gives .Entries, in order.
func TestTemplateBatch(t *testing.T) {
	enc, err := templateEncoder(t, `[{{ range $i, $e := .Entries }}{{ if $i }},{{ end }}{"seq": {{ $e.Seq }}, "op": {{ jsonString $e.Operation }}}{{ end }}]`,
		"batch.maxEntries = 20")
	if err != nil {
		t.Fatal(err)
	}
	msgs := wireMessages(t)
	body, err := enc.Body(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Seq uint64
		Op  string
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got) != len(msgs) {
		t.Fatalf("%v %d elements: %s", err, len(got), body)
	}
	for i, g := range got {
		if g.Seq != msgs[i].Seq || g.Op != msgs[i].Entry.Operation {
			t.Errorf("element %d = %+v, want seq %d %s", i, g, msgs[i].Seq, msgs[i].Entry.Operation)
		}
	}
}

// TestTemplateSeedErrors: a template that fails, or makes what is not
// JSON, on the seed entries its filter lets through is a configuration
// error naming the key and the entry.
func TestTemplateSeedErrors(t *testing.T) {
	for _, tt := range []struct {
		name, text, more, want string
	}{
		{"fails on a seed entry", `{"n": {{ len .Entry.details.title }}}`, "",
			`webhooks.tpl.template.file: `},
		{"not JSON", `{"text": {{ .Operation }}}`, "", `the body is not JSON (contentType application/json)`},
		{"NDJSON line not JSON", `{"index":{}}` + "\n" + `{{ .Operation }}` + "\n", `template.contentType = "application/x-ndjson"`,
			`line 2 of the body is not JSON (contentType application/x-ndjson)`},
		{"batch fails together", `{{ range .Entries }}{"a":1}{{ end }}`, "batch.maxEntries = 5", `on a batch of`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := templateEncoder(t, tt.text, tt.more)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "webhooks.tpl.template.file: ") {
				t.Errorf("err = %v, want one starting with the key and containing %q", err, tt.want)
			}
		})
	}
	// The same template is fine where the filter keeps only entries it
	// handles (and the send-test entry, which has a title).
	if _, err := templateEncoder(t, `{"n": {{ len .Entry.details.title }}}`, `filter.objectTypes = [case_task, alert], filter.operations = [Creation]`); err != nil {
		t.Errorf("filtered seeds: %v", err)
	}
	// Not JSON is fine for another content type.
	if _, err := templateEncoder(t, `{{ .Operation }} {{ .Entry.objectType }}`, `template.contentType = "text/plain"`); err != nil {
		t.Errorf("text/plain: %v", err)
	}
}

// TestTemplateRenderError: at run time, a template failing on an entry is
// a renderError naming it.
func TestTemplateRenderError(t *testing.T) {
	enc, err := templateEncoder(t, `{{ if eq .Entry.objectType "boom" }}{{ fail "boom entries are refused" }}{{ end }}{"ok": true}`, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = enc.Body(nil, []*audit.Message{mustDecodeMessage(t, `{"operation":"Creation","objectType":"boom","objectId":"b"}`, 42)})
	var re *renderError
	if !errors.As(err, &re) || re.Seq != 42 || !strings.Contains(err.Error(), "boom entries are refused") {
		t.Errorf("err = %v, want a renderError for seq 42", err)
	}
}

// TestSeedEntriesAreTheExamples keeps the embedded seeds equal to
// examples/entries.jsonl.
func TestSeedEntriesAreTheExamples(t *testing.T) {
	want, err := os.ReadFile("../examples/entries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(seedEntries, want) {
		t.Error("sink/seed_entries.jsonl differs from examples/entries.jsonl: copy it")
	}
	n := 0
	for sc := bufio.NewScanner(bytes.NewReader(seedEntries)); sc.Scan(); n++ {
	}
	if n < 10 {
		t.Errorf("%d seed entries", n)
	}
}
