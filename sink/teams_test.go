package sink

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
)

// cardcheckDir holds the Node script that validates Teams messages with
// Microsoft's adaptivecards package, pinned by its package-lock.json.
const cardcheckDir = "../internal/cardcheck"

var cardcheckInstall sync.Once

// checkCards validates each Teams message body with Microsoft's Adaptive
// Cards library, installing it first (npm ci) when it is missing, so a
// plain `go test` works on a machine with Node.js and npm.
func checkCards(t *testing.T, bodies ...[]byte) {
	t.Helper()
	cardcheckInstall.Do(func() {
		if _, err := os.Stat(filepath.Join(cardcheckDir, "node_modules", "adaptivecards", "dist", "adaptivecards.js")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = cardcheckDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s (Node.js and npm are needed to validate Teams cards): %v\n%s", cardcheckDir, err, out)
		}
	})
	cmd := exec.Command("node", "check.js")
	cmd.Dir = cardcheckDir
	cmd.Stdin = bytes.NewReader(bytes.Join(bodies, []byte("\n")))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Adaptive Cards library rejects the cards: %v\n%s", err, out)
	}
}

// teamsCardOf decodes a Teams message body down to its card's sections.
type teamsCardOf struct {
	Type        string
	Attachments []struct {
		ContentType string
		Content     struct {
			Type, Version string
			Body          []struct {
				Items []struct {
					Type, Text string
					Facts      []teamsFact
				}
			}
			Actions []teamsAction
		}
	}
}

func decodeTeams(t *testing.T, body []byte) teamsCardOf {
	t.Helper()
	var m teamsCardOf
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	if m.Type != "message" || len(m.Attachments) != 1 || m.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		m.Attachments[0].Content.Type != "AdaptiveCard" {
		t.Fatalf("not a Teams message with one Adaptive Card: %s", body)
	}
	return m
}

// TestTeamsCards: the card of each kind of entry shows the facts of the
// Slack line, severity, TLP and status when the object has them, and a
// link when the entry carries one; Microsoft's library accepts every card.
func TestTeamsCards(t *testing.T) {
	seeds := seedMessages(t)
	enc := encoderFor(t, "teams", 1, false)
	linked := mustDecodeMessage(t, `{"operation":"create","objectType":"Alert","objectId":"~9","details":{"title":"Beacon <b>*now*</b>","severity":4,"tlp":3,"externalLink":"https://edr.example.org/alerts/42?x=1&y=2"},"object":{"_createdBy":"edr","status":"New"}}`, 50)
	tests := []struct {
		name    string
		msg     *audit.Message
		heading string
		subject string
		facts   map[string]string
		link    string
	}{
		{"case", seeds[0], "Creation case", "Test case for webhook",
			map[string]string{"By": "admin", "Severity": "MEDIUM (2)", "TLP": "AMBER (2)", "Status": "Open", "Id": "AV6FZsTj0KeanEfOQfd_"}, ""},
		{"task update: status from details, who from updatedBy", seeds[3], "Update case_task", "Isolate the host",
			map[string]string{"By": "analyst1", "Status": "InProgress"}, ""},
		{"observable: no title, its id", seeds[5], "Creation case_artifact", "d4c2ab2e8a3c1f0b9e7a6d5c4b3a2910",
			map[string]string{"By": "analyst1", "TLP": "AMBER (2)", "Status": "Ok"}, ""},
		{"TheHive 4 case", seeds[8], "Creation Case", "Phishing report from finance",
			map[string]string{"Severity": "MEDIUM (2)", "Status": "Open", "Operation": "Creation", "Object type": "Case"}, ""},
		{"no title, no object", mustDecodeMessage(t, `{"operation":"Delete","objectType":"alert","objectId":"ce2c00f1","details":{}}`, 51),
			"Delete alert", "ce2c00f1", map[string]string{"Id": "ce2c00f1"}, ""},
		{"link, markup in the title, TLP 3", linked, "Creation Alert", "Beacon <b>*now*</b>",
			map[string]string{"Severity": "CRITICAL (4)", "TLP": "3", "Status": "New"}, "https://edr.example.org/alerts/42?x=1&y=2"},
	}
	var bodies [][]byte
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := enc.Body(nil, []*audit.Message{tt.msg})
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, body)
			card := decodeTeams(t, body).Attachments[0].Content
			items := card.Body[0].Items
			if items[0].Text != tt.heading || items[1].Text != tt.subject {
				t.Errorf("heading %q, subject %q; want %q, %q", items[0].Text, items[1].Text, tt.heading, tt.subject)
			}
			got := map[string]string{}
			for _, f := range items[2].Facts {
				got[f.Title] = f.Value
			}
			for k, v := range tt.facts {
				if got[k] != v {
					t.Errorf("fact %s = %q, want %q (facts %v)", k, got[k], v, got)
				}
			}
			if tt.facts["By"] == "" && got["By"] != "" {
				t.Errorf("By = %q, want none", got["By"])
			}
			switch {
			case tt.link == "" && len(card.Actions) > 0:
				t.Errorf("actions %v, want none", card.Actions)
			case tt.link != "" && (len(card.Actions) != 1 || card.Actions[0].URL != tt.link || card.Actions[0].Type != "Action.OpenUrl"):
				t.Errorf("actions %v, want one opening %s", card.Actions, tt.link)
			}
		})
	}
	batch, err := encoderFor(t, "teams", 10, false).Body(nil, append(seeds[:3:3], linked))
	if err != nil {
		t.Fatal(err)
	}
	if m := decodeTeams(t, batch); len(m.Attachments[0].Content.Body) != 4 || !strings.HasPrefix(m.Attachments[0].Content.Actions[0].Title, "Open Beacon") {
		t.Errorf("batch card: %s", batch)
	}
	checkCards(t, append(bodies, batch)...)
}

// TestCardcheckRejects keeps the validator honest: a card with an unknown
// element, a bad value and a property Adaptive Cards does not have fails.
func TestCardcheckRejects(t *testing.T) {
	checkCards(t, encoderFor(t, "teams", 1, false).mustBody(t, seedMessages(t)[0]))
	cmd := exec.Command("node", "check.js")
	cmd.Dir = cardcheckDir
	cmd.Stdin = strings.NewReader(`{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":` +
		`{"type":"AdaptiveCard","version":"1.4","colour":"red","body":[{"type":"TextBlok","text":"x"},{"type":"TextBlock","text":"y","weight":"Boldest"}]}}]}`)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("a bad card passed:\n%s", out)
	}
	for _, want := range []string{`Unknown element type "TextBlok"`, `Invalid value "Boldest"`, `card.colour: not an Adaptive Card property`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validator output lacks %q:\n%s", want, out)
		}
	}
}

func (e *Encoder) mustBody(t *testing.T, m *audit.Message) []byte {
	t.Helper()
	b, err := e.Body(nil, []*audit.Message{m})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// seedMessages are the seed entries (examples/entries.jsonl), seq 1, 2, …
func seedMessages(t testing.TB) []*audit.Message {
	t.Helper()
	var out []*audit.Message
	for i, line := range bytes.Split(bytes.TrimSpace(seedEntries), []byte("\n")) {
		out = append(out, mustDecodeMessage(t, string(line), uint64(i+1)))
	}
	return out
}
