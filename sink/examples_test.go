package sink

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
)

// exampleEncoder builds the encoder of a template in examples/templates,
// loaded through the configuration as a user's would be.
func exampleEncoder(t *testing.T, file, more string) *Encoder {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("../examples/templates", file))
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := templateEncoder(t, string(text), more)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return enc
}

// TestExampleJira checks each body against Jira's "Create issue" (REST API
// v2, POST /rest/api/2/issue, Atlassian's reference): a "fields" object
// with project.key, issuetype.name, a one-line summary under 255
// characters, a text description, and labels without spaces.
func TestExampleJira(t *testing.T) {
	enc := exampleEncoder(t, "jira-issue.json.tmpl", "")
	for _, m := range seedMessages(t) {
		body := enc.mustBody(t, m)
		var issue struct {
			Fields struct {
				Project     struct{ Key string }
				Issuetype   struct{ Name string }
				Summary     string
				Description string
				Labels      []string
			}
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&issue); err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		f := issue.Fields
		if f.Project.Key == "" || f.Issuetype.Name == "" || f.Summary == "" || len(f.Summary) > 255 || strings.ContainsAny(f.Summary, "\r\n") {
			t.Errorf("not a valid issue: %+v", f)
		}
		if !strings.Contains(f.Summary, m.Entry.ObjectType) || !strings.Contains(f.Description, m.Entry.ObjectID) {
			t.Errorf("summary %q / description %q do not name the entry", f.Summary, f.Description)
		}
		for _, l := range f.Labels {
			if l == "" || strings.ContainsAny(l, " \t") {
				t.Errorf("label %q: Jira labels have no spaces", l)
			}
		}
	}
}

// TestExampleMattermost checks the message against Mattermost's incoming
// webhook payload with message attachments (developers.mattermost.com,
// "Message attachments"): each attachment has the required fallback, a
// hex color, and fields of title, value and short; a batch gives an
// attachment per entry.
func TestExampleMattermost(t *testing.T) {
	seeds := seedMessages(t)
	for _, tt := range []struct {
		more string
		msgs [][]*audit.Message
	}{
		{"", [][]*audit.Message{{seeds[0]}, {seeds[10]}}},
		{"batch.maxEntries = 20", [][]*audit.Message{seeds}},
	} {
		enc := exampleEncoder(t, "mattermost-attachments.json.tmpl", tt.more)
		for _, msgs := range tt.msgs {
			body, err := enc.Body(nil, msgs)
			if err != nil {
				t.Fatal(err)
			}
			var msg struct {
				Username, Text string
				Attachments    []struct {
					Fallback, Color, Title, Text string
					Fields                       []struct {
						Short        *bool
						Title, Value string
					}
				}
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&msg); err != nil {
				t.Fatalf("%v\n%s", err, body)
			}
			if len(msg.Attachments) != len(msgs) || msg.Text == "" {
				t.Fatalf("%d attachments for %d entries: %s", len(msg.Attachments), len(msgs), body)
			}
			for i, a := range msg.Attachments {
				if a.Fallback == "" || !regexp.MustCompile(`^#[0-9a-f]{6}$`).MatchString(a.Color) || !strings.Contains(a.Fallback, msgs[i].Entry.Operation) {
					t.Errorf("attachment %d: %+v", i, a)
				}
				for _, f := range a.Fields {
					if f.Short == nil || f.Title == "" || f.Value == "" {
						t.Errorf("attachment %d field %+v", i, f)
					}
				}
			}
		}
	}
}

// TestExampleElasticsearchBulk checks a batch against Elasticsearch's _bulk
// API (Elastic's reference, "Bulk API"): newline-delimited JSON, an action
// line then its document, the body ending with a newline; each document
// is the entry and each id its stream sequence.
func TestExampleElasticsearchBulk(t *testing.T) {
	enc := exampleEncoder(t, "elasticsearch-bulk.ndjson.tmpl",
		`batch.maxEntries = 500, template.contentType = "application/x-ndjson"`)
	if enc.ContentType() != "application/x-ndjson" {
		t.Errorf("content type %q", enc.ContentType())
	}
	msgs := seedMessages(t)
	body, err := enc.Body(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(body, []byte("\n")) || bytes.HasPrefix(body, []byte("\n")) {
		t.Errorf("body must end, and not start, with a newline: %q", body)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 2*len(msgs) {
		t.Fatalf("%d lines for %d entries:\n%s", len(lines), len(msgs), body)
	}
	for i, m := range msgs {
		var action struct {
			Index struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			}
		}
		if err := json.Unmarshal([]byte(lines[2*i]), &action); err != nil || action.Index.Index == "" || action.Index.ID != jsonNumber(m.Seq) {
			t.Errorf("action %d %q: %v", i, lines[2*i], err)
		}
		var got, want any
		if err := json.Unmarshal([]byte(lines[2*i+1]), &got); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		_ = json.Unmarshal(m.Entry.Raw, &want)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("document %d is not the entry:\n%s\n%s", i, g, w)
		}
	}
}

func jsonNumber(n uint64) string { b, _ := json.Marshal(n); return string(b) }
