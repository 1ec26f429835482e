package sink

import (
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// hecEvent is an event as Splunk's HTTP Event Collector reads it
// (/services/collector/event: time, host, source, sourcetype, index, event).
type hecEvent struct {
	Time       json.Number     `json:"time"`
	Host       *string         `json:"host"`
	Source     *string         `json:"source"`
	Sourcetype *string         `json:"sourcetype"`
	Index      *string         `json:"index"`
	Event      json.RawMessage `json:"event"`
}

func splunkEncoder(t testing.TB, s config.Splunk, maxEntries int) *Encoder {
	t.Helper()
	wh := config.DefaultWebhook()
	wh.Name, wh.Format, wh.Splunk, wh.Batch.MaxEntries = "hec", "splunk", s, maxEntries
	enc, err := NewEncoder(&wh)
	if err != nil {
		t.Fatal(err)
	}
	return enc
}

// readHEC reads a body as HEC does: JSON objects one after another.
func readHEC(t *testing.T, body []byte) []hecEvent {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out []hecEvent
	for {
		var ev hecEvent
		err := dec.Decode(&ev)
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("body is not HEC events one after another: %v\n%s", err, body)
		}
		out = append(out, ev)
	}
}

func TestSplunkEvent(t *testing.T) {
	msgs := wireMessages(t)
	noDate := mustDecodeMessage(t, `{"operation":"Creation","objectType":"case","objectId":"x"}`+"\n", 9)
	noDate.Time = time.UnixMilli(1700000000042)
	enc := splunkEncoder(t, config.Splunk{Source: "auditrelay", Sourcetype: "thehive:audit", Index: "soc"}, 1)
	for _, tt := range []struct {
		msg      *audit.Message
		wantTime string
	}{
		{msgs[0], "1505476659.427"},
		{msgs[7], "1594899999.424"},
		{noDate, "1700000000.042"},
	} {
		body, err := enc.Body(nil, []*audit.Message{tt.msg})
		if err != nil {
			t.Fatal(err)
		}
		evs := readHEC(t, body)
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		ev := evs[0]
		if ev.Time.String() != tt.wantTime {
			t.Errorf("time = %s, want %s", ev.Time, tt.wantTime)
		}
		if ev.Host != nil || *ev.Source != "auditrelay" || *ev.Sourcetype != "thehive:audit" || *ev.Index != "soc" {
			t.Errorf("metadata host %v source %v sourcetype %v index %v, want no host", ev.Host, *ev.Source, *ev.Sourcetype, *ev.Index)
		}
		if !bytes.Contains(body, append([]byte(`,"event":`), tt.msg.Entry.Raw...)) || !bytes.Equal(ev.Event, bytes.TrimSpace(tt.msg.Entry.Raw)) {
			t.Errorf("event = %s, want the entry unchanged, byte for byte: %q", body, tt.msg.Entry.Raw)
		}
	}
}

func TestSplunkNoMetadata(t *testing.T) {
	body, err := splunkEncoder(t, config.Splunk{}, 1).Body(nil, wireMessages(t)[:1])
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 || fields["time"] == nil || fields["event"] == nil {
		t.Errorf("fields %v, want only time and event", fields)
	}
}

// TestSplunkBatch: a batch is the events one after another, as HEC takes
// them, never a JSON array; each event is its entry in stream order.
func TestSplunkBatch(t *testing.T) {
	msgs := wireMessages(t)
	body, err := splunkEncoder(t, config.Splunk{Host: "thehive-1"}, 50).Body(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	if body[0] != '{' {
		t.Fatalf("body starts with %q, want an event", body[0])
	}
	evs := readHEC(t, body)
	if len(evs) != len(msgs) {
		t.Fatalf("%d events, want %d", len(evs), len(msgs))
	}
	for i, ev := range evs {
		if !bytes.Equal(ev.Event, msgs[i].Entry.Raw) || *ev.Host != "thehive-1" {
			t.Errorf("event %d = %s host %v, want entry %s", i, ev.Event, ev.Host, msgs[i].Entry.Raw)
		}
	}
}

func TestAppendEpochMillis(t *testing.T) {
	for ms, want := range map[int64]string{0: "0.000", 7: "0.007", 1505476659487: "1505476659.487", 1000: "1.000", -1500: "-1.500"} {
		if got := string(appendEpochMillis(nil, ms)); got != want {
			t.Errorf("%d: %s, want %s", ms, got, want)
		}
	}
}
