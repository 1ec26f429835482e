package sink

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// wireMessages returns the fixtures as messages, in fixture order, with
// stream sequences 101, 102, …
func wireMessages(t testing.TB) []*audit.Message {
	t.Helper()
	entries := wireEntries(t)
	msgs := make([]*audit.Message, len(wireFixtures))
	for i, f := range wireFixtures {
		msgs[i] = &audit.Message{Entry: *entries[f.name], Seq: uint64(101 + i)}
	}
	return msgs
}

func encoderFor(t testing.TB, format string, maxEntries int, gzip bool) *Encoder {
	t.Helper()
	wh := config.DefaultWebhook()
	wh.Name, wh.Format, wh.Batch.MaxEntries, wh.WS.CompressionEnabled = "siem", config.Format(format), maxEntries, gzip
	enc, err := NewEncoder(&wh)
	if err != nil {
		t.Fatalf("NewEncoder(%s): %v", format, err)
	}
	return enc
}

func TestEncoderAuditSingleIsRaw(t *testing.T) {
	msgs := wireMessages(t)
	withNewline := mustDecodeMessage(t, wireFixtures[0].raw+"\n", 7)
	tests := []struct {
		name string
		msg  *audit.Message
	}{
		{"TheHive 3", msgs[0]},
		{"TheHive 4", msgs[7]},
		{"trailing newline kept", withNewline},
	}
	enc := encoderFor(t, "audit", 1, false)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("kept:")
			got, err := enc.Body(prefix, []*audit.Message{tt.msg})
			if err != nil {
				t.Fatal(err)
			}
			want := append([]byte("kept:"), tt.msg.Entry.Raw...)
			if !bytes.Equal(got, want) {
				t.Errorf("body\n got %q\nwant %q", got, want)
			}
		})
	}
}

func mustDecodeMessage(t testing.TB, raw string, seq uint64) *audit.Message {
	t.Helper()
	e, err := audit.Decode([]byte(raw), 0)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return &audit.Message{Entry: e, Seq: seq}
}

func TestEncoderAuditBatchElementsArePublishedBytes(t *testing.T) {
	msgs := wireMessages(t)
	// A published entry may carry a trailing newline or be pretty-printed:
	// the element is still its bytes, only JSON whitespace surrounds them.
	msgs = append(msgs, mustDecodeMessage(t, wireFixtures[1].raw+"\n", 900))
	msgs = append(msgs, mustDecodeMessage(t, "{\n  \"operation\": \"Update\",\n  \"objectType\": \"case\",\n  \"objectId\": \"x\"\n}", 901))
	enc := encoderFor(t, "audit", 100, false)
	body, err := enc.Body(nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(body, &elems); err != nil {
		t.Fatalf("batch body is not a JSON array: %v\n%s", err, body)
	}
	if len(elems) != len(msgs) {
		t.Fatalf("got %d elements, want %d", len(elems), len(msgs))
	}
	for i, m := range msgs {
		if got, want := []byte(elems[i]), bytes.TrimSpace(m.Entry.Raw); !bytes.Equal(got, want) {
			t.Errorf("element %d\n got %s\nwant %s", i, got, want)
		}
	}
	want := "[" + string(bytes.Join(rawsOf(msgs), []byte(","))) + "]"
	if string(body) != want {
		t.Errorf("body is not the raw entries joined:\n got %s\nwant %s", body, want)
	}
}

func rawsOf(msgs []*audit.Message) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Entry.Raw
	}
	return out
}

func TestEncoderBatchOfOneIsAnArray(t *testing.T) {
	msgs := wireMessages(t)[:1]
	tests := []struct {
		format, want string
	}{
		{"audit", "[" + wireFixtures[0].raw + "]"},
		{"thin", `[{"webhook":"siem","eventId":101}]`},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			got, err := encoderFor(t, tt.format, 10, false).Body(nil, msgs)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEncoderThin(t *testing.T) {
	msgs := wireMessages(t)
	tests := []struct {
		name, webhook string
		maxEntries    int
		msgs          []*audit.Message
		want          string
	}{
		{"single", "siem", 1, msgs[:1], `{"webhook":"siem","eventId":101}`},
		{"batch", "siem", 5, msgs[2:5], `[{"webhook":"siem","eventId":103},{"webhook":"siem","eventId":104},{"webhook":"siem","eventId":105}]`},
		{"name escaped", `soc "eu"\1`, 1, msgs[:1], `{"webhook":"soc \"eu\"\\1","eventId":101}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := config.DefaultWebhook()
			wh.Name, wh.Format, wh.Batch.MaxEntries = tt.webhook, "thin", tt.maxEntries
			enc, err := NewEncoder(&wh)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.Body(nil, tt.msgs)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			checkThinShape(t, got, tt.webhook, tt.msgs)
		})
	}
}

// checkThinShape decodes a thin body strictly: webhook and eventId, nothing
// else.
func checkThinShape(t *testing.T, body []byte, webhook string, msgs []*audit.Message) {
	t.Helper()
	type thin struct {
		Webhook string `json:"webhook"`
		EventID uint64 `json:"eventId"`
	}
	if body[0] != '[' {
		body = append(append([]byte("["), body...), ']')
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var got []thin
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("thin body %s: %v", body, err)
	}
	for i, m := range msgs {
		if want := (thin{webhook, m.Seq}); got[i] != want {
			t.Errorf("element %d = %+v, want %+v", i, got[i], want)
		}
	}
}

func TestEncoderSlack(t *testing.T) {
	msgs := wireMessages(t)
	tests := []struct {
		name string
		msgs []*audit.Message
		want string
	}{
		{"title and creator", msgs[:1], `Creation case "Test case for webhook" by admin`},
		{"updater wins over creator", msgs[3:4], `Update case "Test case for webhook" by jdoe`},
		{"no title: object id", msgs[2:3], `Creation case_artifact a1d1b1c6e4b0f2f6d1e0c3b2a1908f7e by jdoe`},
		{"no title, no author", msgs[6:7], `Delete alert ce2c00f17132359cb3c50dfbb1901810`},
		{"TheHive 4, title from the object", msgs[8:9], `Update Task "Contain host" by analyst@soc-us.example`},
		{"one line per entry", msgs[7:11], strings.Join([]string{
			`Creation Case "Phishing wave" by analyst@soc-eu.example`,
			`Update Task "Contain host" by analyst@soc-us.example`,
			`Delete Observable ~12480`,
			`Creation Alert "Suspicious login" by connector@partner.example`,
		}, "\n")},
		{"slack and JSON escaping", []*audit.Message{mustDecodeMessage(t,
			`{"operation":"Creation","objectType":"case","objectId":"c1","details":{"title":"R&D <urgent> \"phish\"\nnext\\line é ✓"},"object":{"createdBy":"a<b>&c"}}`, 1)},
			`Creation case "R&amp;D &lt;urgent&gt; "phish" next\line é ✓" by a&lt;b&gt;&amp;c`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := encoderFor(t, "slack", 10, false)
			body, err := enc.Body(nil, tt.msgs)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("slack body %s: %v", body, err)
			}
			if len(got) != 1 || got["text"] != tt.want {
				t.Errorf("got  %q\nwant {\"text\": %q}", got, tt.want)
			}
		})
	}
}

func TestAppendJSONContent(t *testing.T) {
	tests := []struct {
		in    string
		slack bool
		want  string
	}{
		{"plain", false, `plain`},
		{"a\"b\\c", false, `a\"b\\c`},
		{"tab\tnl\ncr\r\x00\x1f", false, `tab\u0009nl\u000acr\u000d\u0000\u001f`},
		{"tab\tnl\n\x7f", true, `tab nl  `},
		{"<&>", false, `<&>`},
		{"<&>", true, `&lt;&amp;&gt;`},
		{"bad \xff utf8", false, `bad \ufffd utf8`},
		{"sep \u2028\u2029", false, `sep \u2028\u2029`},
		{"ünïcødé ✓ 🚨", true, `ünïcødé ✓ 🚨`},
	}
	for _, tt := range tests {
		got := string(appendJSONContent(nil, tt.in, tt.slack))
		if got != tt.want {
			t.Errorf("appendJSONContent(%q, %v) = %s, want %s", tt.in, tt.slack, got, tt.want)
		}
		var back string
		if err := json.Unmarshal([]byte(`"`+got+`"`), &back); err != nil {
			t.Errorf("appendJSONContent(%q) is not a JSON string: %v", tt.in, err)
		}
	}
}

func TestEncoderGzipRoundTrip(t *testing.T) {
	msgs := wireMessages(t)
	for _, format := range []string{"audit", "slack", "thin"} {
		for _, maxEntries := range []int{1, 20} {
			batch := msgs[:1]
			if maxEntries > 1 {
				batch = msgs
			}
			plain, err := encoderFor(t, format, maxEntries, false).Body(nil, batch)
			if err != nil {
				t.Fatal(err)
			}
			enc := encoderFor(t, format, maxEntries, true)
			if got := enc.ContentEncoding(); got != "gzip" {
				t.Errorf("ContentEncoding() = %q, want gzip", got)
			}
			zipped, err := enc.Body([]byte("prefix"), batch)
			if err != nil {
				t.Fatal(err)
			}
			if got := gunzipAfter(t, zipped, "prefix"); !bytes.Equal(got, plain) {
				t.Errorf("%s/%d: gunzipped\n got %s\nwant %s", format, maxEntries, got, plain)
			}
		}
	}
}

func gunzipAfter(t *testing.T, body []byte, prefix string) []byte {
	t.Helper()
	rest, ok := bytes.CutPrefix(body, []byte(prefix))
	if !ok {
		t.Fatalf("body lost its prefix %q", prefix)
	}
	zr, err := gzip.NewReader(bytes.NewReader(rest))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestEncoderContentEncodingPlain(t *testing.T) {
	if got := encoderFor(t, "audit", 1, false).ContentEncoding(); got != "" {
		t.Errorf("ContentEncoding() = %q, want empty", got)
	}
}

func TestEncoderGzipConcurrent(t *testing.T) {
	msgs := wireMessages(t)
	enc := encoderFor(t, "audit", 20, true)
	plain := encoderFor(t, "audit", 20, false)
	wants := make([][]byte, len(msgs)+1)
	for n := 1; n <= len(msgs); n++ {
		var err error
		if wants[n], err = plain.Body(nil, msgs[:n]); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				n := 1 + (g+i)%len(msgs)
				body, err := enc.Body(nil, msgs[:n])
				if err != nil {
					t.Error(err)
					return
				}
				if got := gunzip(body); !bytes.Equal(got, wants[n]) {
					t.Errorf("concurrent gzip body of %d entries differs", n)
					return
				}
			}
		})
	}
	wg.Wait()
}

// gunzip returns nil for anything that is not gzip.
func gunzip(body []byte) []byte {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil
	}
	out, _ := io.ReadAll(zr)
	return out
}

func TestEncoderErrors(t *testing.T) {
	msgs := wireMessages(t)
	tests := []struct {
		name       string
		format     string
		maxEntries int
		msgs       []*audit.Message
		wantErr    string
		wantIs     error
	}{
		{"no entries", "audit", 1, nil, "no entries", errNoEntries},
		{"several without batching", "thin", 1, msgs[:2], "batch.maxEntries is 1", nil},
		{"audit entry without raw bytes", "audit", 5, []*audit.Message{msgs[0], {Seq: 77}}, "entry 77", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := encoderFor(t, tt.format, tt.maxEntries, false).Body(dst, tt.msgs)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.wantIs)
			}
			if string(got) != "keep" {
				t.Errorf("dst = %q after an error, want it unchanged", got)
			}
		})
	}
}

func TestEncoderAuditSingleAllocatesNothing(t *testing.T) {
	msgs := wireMessages(t)[:1]
	enc := encoderFor(t, "audit", 1, false)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		buf, _ = enc.Body(buf[:0], msgs)
	})
	if allocs != 0 {
		t.Errorf("audit single body allocates %v times with a reused buffer, want 0", allocs)
	}
}

func TestEncoderGzipPoolSavesAllocations(t *testing.T) {
	msgs := wireMessages(t)
	enc := encoderFor(t, "audit", 20, true)
	buf := make([]byte, 0, 16<<10)
	buf, _ = enc.Body(buf[:0], msgs) // warm the pool
	pooled := testing.AllocsPerRun(100, func() {
		buf, _ = enc.Body(buf[:0], msgs)
	})
	plain := encoderFor(t, "audit", 20, false)
	unpooled := testing.AllocsPerRun(100, func() {
		buf = gzipUnpooled(plain, buf[:0], msgs)
	})
	// Not a fixed 0: under -race sync.Pool drops a quarter of its items on
	// purpose, so a pooled writer is rebuilt now and then.
	if pooled > unpooled/2 {
		t.Errorf("gzip body allocates %v times per call with the pool, %v without: the pool is not reused", pooled, unpooled)
	}
}

// gzipUnpooled is Body with a new gzip writer per call: what the pool saves.
func gzipUnpooled(plain *Encoder, dst []byte, msgs []*audit.Message) []byte {
	body, _ := plain.Body(nil, msgs)
	w := appendWriter{b: dst}
	zw := gzip.NewWriter(&w)
	_, _ = zw.Write(body)
	_ = zw.Close()
	return w.b
}

func benchEncoder(b *testing.B, format string, maxEntries int, gzip bool, n int) {
	msgs := wireMessages(b)
	for len(msgs) < n {
		msgs = append(msgs, msgs...)
	}
	msgs = msgs[:n]
	enc := encoderFor(b, format, maxEntries, gzip)
	// Throughput counts the uncompressed body, so gzip compares with plain.
	plain, err := encoderFor(b, format, maxEntries, false).Body(nil, msgs)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(plain)))
	buf := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = enc.Body(buf[:0], msgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncoderBodyAuditSingle(b *testing.B)  { benchEncoder(b, "audit", 1, false, 1) }
func BenchmarkEncoderBodyAuditBatch10(b *testing.B) { benchEncoder(b, "audit", 10, false, 10) }
func BenchmarkEncoderBodySlack(b *testing.B)        { benchEncoder(b, "slack", 1, false, 1) }
func BenchmarkEncoderBodySlackBatch10(b *testing.B) { benchEncoder(b, "slack", 10, false, 10) }
func BenchmarkEncoderBodyThin(b *testing.B)         { benchEncoder(b, "thin", 1, false, 1) }
func BenchmarkEncoderBodyThinBatch10(b *testing.B)  { benchEncoder(b, "thin", 10, false, 10) }
func BenchmarkEncoderBodyGzipSingle(b *testing.B)   { benchEncoder(b, "audit", 1, true, 1) }
func BenchmarkEncoderBodyGzipBatch10(b *testing.B)  { benchEncoder(b, "audit", 10, true, 10) }

// BenchmarkEncoderBodyGzipUnpooled is what the pool saves: a new gzip
// writer per body.
func BenchmarkEncoderBodyGzipUnpooled(b *testing.B) {
	msgs := wireMessages(b)[:1]
	plain := encoderFor(b, "audit", 1, false)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		out = gzipUnpooled(plain, out[:0], msgs)
	}
}

// TestBodyOfOneAuditEntryIsItsBytes: with no buffer, a single audit entry
// is sent as the very slice it arrived in, not a copy.
func TestBodyOfOneAuditEntryIsItsBytes(t *testing.T) {
	wh := config.DefaultWebhook()
	enc, err := NewEncoder(&wh)
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"operation":"Creation","objectType":"case","objectId":"c1"}`)
	body, err := enc.Body(nil, []*audit.Message{{Entry: audit.Entry{Raw: raw}, Seq: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if len(body) != len(raw) || &body[0] != &raw[0] {
		t.Error("the body is a copy of the entry")
	}
}
