package relay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
)

// TestWireFormats runs one sidecar with a webhook per new format and an
// expression filter (SPEC §2.3, §4) over the seed entries and one entry the
// template refuses: Teams messages, Splunk HEC events batched one after
// another with its key, a template's JSON with one entry dead-lettered and
// the others delivered, and only the IOC observables through the expr.
func TestWireFormats(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	tmpl := filepath.Join(t.TempDir(), "chat.tmpl")
	if err := os.WriteFile(tmpl, []byte(`{{ if eq .Entry.objectType "boom" }}{{ fail "boom entries are refused" }}{{ end -}}
{"text": {{ printf "%s %s %s" .Operation .Entry.objectType .Entry.objectId | jsonString }}, "seq": {{ .Seq }}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks {
  teams { url = "%[1]s/teams", format = teams, filter.excludeObjectTypes = [case_task_log, Case] }
  hec { url = "%[1]s/hec", format = splunk, auth { type = key, key = "Splunk 0000-hec-token" },
        splunk { index = soc }, batch { maxEntries = 50, maxWait = 2s } }
  tpl { url = "%[1]s/tpl", format = template, template { file = %[2]q } }
  ioc { url = "%[1]s/ioc", filter.expr = "objectType == \"case_artifact\" && details.ioc == true && operation == \"Creation\"" }
}
`, rc.URL, tmpl)))
	s := startRelay(t, cfg)
	seeds, err := os.ReadFile("../examples/entries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	entries := strings.Split(strings.TrimSpace(string(seeds)), "\n")
	boom := `{"operation":"Creation","objectType":"boom","objectId":"b1","rootId":"b1","startDate":1505476999000}`
	for _, e := range append(entries, boom) {
		wirePublish(t, js, e)
	}
	total := len(entries) + 1
	addr := s.AdminAddr()

	// Teams: every entry but the excluded types (4 cases of TheHive 3 and
	// 4, any case, and a task log), each a message with a card.
	waitWireMetric(t, addr, float64(total-5), "auditrelay_deliveries_total", `webhook="teams"`, `outcome="delivered"`)
	waitWireMetric(t, addr, 5, "auditrelay_deliveries_total", `webhook="teams"`, `outcome="filtered"`)
	for _, b := range rc.bodies("/teams") {
		var m struct {
			Type        string
			Attachments []struct{ ContentType string }
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Type != "message" || m.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" {
			t.Errorf("teams body: %v %s", err, b)
		}
	}

	// Splunk: every entry as an event, batched, with the HEC key.
	waitWireMetric(t, addr, float64(total), "auditrelay_deliveries_total", `webhook="hec"`, `outcome="delivered"`)
	var events []string
	hecRequests := 0
	for _, r := range rc.requests() {
		if r.path != "/hec" {
			continue
		}
		hecRequests++
		if got := r.header.Get("Authorization"); got != "Splunk 0000-hec-token" {
			t.Errorf("Authorization = %q", got)
		}
		dec := json.NewDecoder(bytes.NewReader(r.body))
		for {
			var ev struct {
				Time  json.Number
				Index string
				Event json.RawMessage
			}
			if err := dec.Decode(&ev); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("hec body: %v\n%s", err, r.body)
			}
			if ev.Index != "soc" || ev.Time == "" {
				t.Errorf("event metadata: index %q time %q", ev.Index, ev.Time)
			}
			events = append(events, string(ev.Event))
		}
	}
	if len(events) != total || hecRequests >= total {
		t.Errorf("%d events in %d requests, want %d events batched", len(events), hecRequests, total)
	}
	checkSameEntriesInKeyOrder(t, "/hec", bytesOf(events), append(entries, boom))

	// Template: the refused entry is dead-lettered with the template's
	// error, the others delivered.
	waitWireMetric(t, addr, float64(total-1), "auditrelay_deliveries_total", `webhook="tpl"`, `outcome="delivered"`)
	waitWireMetric(t, addr, 1, "auditrelay_deliveries_total", `webhook="tpl"`, `outcome="deadlettered"`)
	h := readDeadLetters(t, js, "auditrelay.deadletter.tpl", 1)[boom]
	if h == nil || !strings.Contains(h.Get(audit.HeaderReason), "boom entries are refused") {
		t.Errorf("dead letter of the refused entry: %v", h)
	}
	for _, b := range rc.bodies("/tpl") {
		var m struct {
			Text string
			Seq  uint64
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Seq == 0 || strings.Contains(m.Text, "boom") {
			t.Errorf("tpl body: %v %s", err, b)
		}
	}

	// expr: the two IOC observables created, nothing else.
	waitWireMetric(t, addr, 2, "auditrelay_deliveries_total", `webhook="ioc"`, `outcome="delivered"`)
	waitWireMetric(t, addr, float64(total-2), "auditrelay_deliveries_total", `webhook="ioc"`, `outcome="filtered"`)
	for _, b := range rc.bodies("/ioc") {
		if !strings.Contains(string(b), `"ioc":true`) || !strings.Contains(string(b), `"objectType":"case_artifact"`) {
			t.Errorf("ioc got %s", b)
		}
	}
}

func bytesOf(s []string) [][]byte {
	out := make([][]byte, len(s))
	for i := range s {
		out[i] = []byte(s[i])
	}
	return out
}
