package sink

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/auditrelay/auditrelay/audit"
)

// The Teams format is a message as a Teams Workflows webhook ("Post to a
// channel when a webhook request is received") takes it: one Adaptive Card
// attachment. The card shows what the Slack line does (operation, object
// type, title with its fallbacks, who) and, when the object has them,
// severity, TLP and status, with a button for a link the entry carries.

// teamsCardVersion is the Adaptive Card schema version Teams renders in
// every client.
const teamsCardVersion = "1.4"

type teamsMessage struct {
	Type        string            `json:"type"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	ContentURL  *string   `json:"contentUrl"` // null, as Teams' own examples send
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string         `json:"$schema"`
	Type    string         `json:"type"`
	Version string         `json:"version"`
	Body    []teamsElement `json:"body"`
	Actions []teamsAction  `json:"actions,omitempty"`
	MSTeams *teamsWidth    `json:"msteams,omitempty"`
}

type teamsWidth struct {
	Width string `json:"width"`
}

// teamsElement is a TextBlock, FactSet or Container: the fields of the
// others stay empty and out of the JSON.
type teamsElement struct {
	Type      string         `json:"type"`
	Text      string         `json:"text,omitempty"`
	Weight    string         `json:"weight,omitempty"`
	Size      string         `json:"size,omitempty"`
	Wrap      bool           `json:"wrap,omitempty"`
	IsSubtle  bool           `json:"isSubtle,omitempty"`
	Spacing   string         `json:"spacing,omitempty"`
	Separator bool           `json:"separator,omitempty"`
	Facts     []teamsFact    `json:"facts,omitempty"`
	Items     []teamsElement `json:"items,omitempty"`
}

type teamsFact struct {
	Title string `json:"title"`
	Value string `json:"value"`
}

type teamsAction struct {
	Type  string `json:"type"`
	Title string `json:"title"`
	URL   string `json:"url"`
}

// appendTeams writes one message: one card, with a section per entry of a
// batch.
func appendTeams(dst []byte, msgs []*audit.Message) []byte {
	card := teamsCard{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard",
		Version: teamsCardVersion, MSTeams: &teamsWidth{Width: "Full"},
	}
	for i, m := range msgs {
		items, link := teamsSection(&m.Entry)
		card.Body = append(card.Body, teamsElement{Type: "Container", Items: items, Separator: i > 0, Spacing: spacingIf(i > 0)})
		if link != "" && len(card.Actions) < 5 { // Teams shows at most 6 actions
			title := "Open"
			if len(msgs) > 1 {
				title = "Open " + teamsSubject(&m.Entry)
			}
			card.Actions = append(card.Actions, teamsAction{Type: "Action.OpenUrl", Title: title, URL: link})
		}
	}
	msg := teamsMessage{Type: "message", Attachments: []teamsAttachment{{
		ContentType: "application/vnd.microsoft.card.adaptive", Content: card,
	}}}
	b, err := json.Marshal(msg)
	if err != nil {
		panic("sink: teams card does not encode: " + err.Error()) // only strings: a bug
	}
	return append(dst, b...)
}

func spacingIf(on bool) string {
	if on {
		return "Medium"
	}
	return ""
}

// teamsSection is one entry's heading, title and facts, and its link.
func teamsSection(e *audit.Entry) ([]teamsElement, string) {
	facts := []teamsFact{{"Operation", e.Operation}, {"Object type", e.ObjectType}}
	if who := e.Who(); who != "" {
		facts = append(facts, teamsFact{"By", who})
	}
	if v := severityName(e.Fact("severity")); v != "" {
		facts = append(facts, teamsFact{"Severity", v})
	}
	if v := tlpName(e.Fact("tlp")); v != "" {
		facts = append(facts, teamsFact{"TLP", v})
	}
	if v := factString(e.Fact("status")); v != "" {
		facts = append(facts, teamsFact{"Status", v})
	}
	facts = append(facts, teamsFact{"Id", e.ObjectID})
	items := []teamsElement{
		{Type: "TextBlock", Text: e.Operation + " " + e.ObjectType, Weight: "Bolder", Size: "Medium", Wrap: true},
		{Type: "TextBlock", Text: teamsSubject(e), Wrap: true, Spacing: "Small"},
		{Type: "FactSet", Facts: facts},
	}
	return items, entryLink(e)
}

// teamsSubject is the title, else the object id: the Slack line's choice.
func teamsSubject(e *audit.Entry) string {
	if t := e.Title(); t != "" {
		return t
	}
	return e.ObjectID
}

// factString is a string fact, or a number's text; "" otherwise.
func factString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
		return ""
	}
	if _, err := strconv.ParseFloat(string(v), 64); err == nil {
		return string(v)
	}
	return ""
}

// severityName reads TheHive's severity, the same 1-4 in every version.
func severityName(v []byte) string {
	s := factString(v)
	switch s {
	case "1":
		return "LOW (1)"
	case "2":
		return "MEDIUM (2)"
	case "3":
		return "HIGH (3)"
	case "4":
		return "CRITICAL (4)"
	}
	return s
}

// tlpName names the levels every TheHive version numbers alike (0-2); 3
// and 4 differ between TheHive 4 and 5, so only the number is shown.
func tlpName(v []byte) string {
	s := factString(v)
	switch s {
	case "0":
		return "CLEAR (0)"
	case "1":
		return "GREEN (1)"
	case "2":
		return "AMBER (2)"
	}
	return s
}

// linkKeys are where TheHive objects carry a link to elsewhere: an alert's
// externalLink (TheHive 5), a url or link that an integration set. An
// observable's data is never a link to follow: it may be the threat.
var linkKeys = []string{"externalLink", "url", "link"}

// entryLink is the first http or https link the entry carries, or "".
func entryLink(e *audit.Entry) string {
	for _, k := range linkKeys {
		s := factString(e.Fact(k))
		if (strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")) && !strings.ContainsAny(s, " \t\r\n") {
			return s
		}
	}
	return ""
}
