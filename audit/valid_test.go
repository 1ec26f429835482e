package audit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var validSeeds = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{"a":}`, `{,}`, `[,]`,
	`"x"`, `"\u00e9\n\t\"\\\/\b\f\r"`, `"\u00g0"`, `"\x"`, "\"a\x01\"", `"abc`, `"\u12"`,
	`0`, `-0`, `01`, `-`, `1.`, `.5`, `1.5e`, `1.5e+3`, `1E-7`, `-12.34E+05`, `1e+`, `+1`, `0x10`,
	`true`, `tru`, `false`, `null`, `nul`, `nullx`, `[true,false,null]`, `{"a":[{"b":{}}]}`,
	` {"a" : [ 1 , 2 ] } `, `{}{}`, `[1] 2`, "\t[\r\n]\n", `{"a":1}}`, `[[[[]]]]`, `[[[[]]]`,
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat(`{"a":`, 10001) + "1" + strings.Repeat("}", 10001),
}

// validJSON answers as json.Valid does, on the seeds, on the entries the
// tests use, and on whatever the fuzzer makes of them.
func FuzzValidJSON(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*"))
	for _, name := range files {
		if b, err := os.ReadFile(name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range validSeeds {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid says %v", s, got, want)
		}
	}
}
