package sink

import (
	"testing"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// Rendering one entry per format, and the expression filter: the targets
// are at most 20 µs per entry to render and 2 µs per filter (entry decoding
// of the fields the expression names included).

func benchmarkBody(b *testing.B, enc *Encoder) {
	m := seedMessages(b)[0]
	msgs := []*audit.Message{m}
	buf := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = enc.Body(buf[:0], msgs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenderTeams(b *testing.B)  { benchmarkBody(b, encoderFor(b, "teams", 1, false)) }
func BenchmarkRenderSplunk(b *testing.B) { benchmarkBody(b, encoderFor(b, "splunk", 1, false)) }

// BenchmarkRenderTemplate renders a typical chat template: a few fields,
// a title with its fallbacks, JSON-escaped.
func BenchmarkRenderTemplate(b *testing.B) {
	enc, err := templateEncoder(b, `{{- $e := .Entry -}}
{"text": {{ printf "%s %s %q by %s" .Operation $e.objectType (or (dig "details" "title" "" $e) $e.objectId) (dig "object" "createdBy" "?" $e) | jsonString }}, "seq": {{ .Seq }}}`, "")
	if err != nil {
		b.Fatal(err)
	}
	benchmarkBody(b, enc)
}

func BenchmarkExprFilter(b *testing.B) {
	f := NewFilter(configFilterExpr(`objectType == "case_artifact" && details.ioc == true`))
	msgs := seedMessages(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Match(&msgs[i%len(msgs)].Entry)
		i++
	}
}

func configFilterExpr(src string) config.Filter { return config.Filter{Expr: src} }
