package audit

import (
	"encoding/json"
	"reflect"
	"testing"
)

// valueSeeds are odd values for Value: escapes, surrogate pairs and lone
// surrogates, bytes that are not UTF-8, numbers at float64's edges and
// beyond, nesting, duplicate keys.
var valueSeeds = []string{
	`{"operation":"Creation","objectType":"case_artifact","objectId":"x","details":{"ioc":true,"data":"1.2.3.4"}}`,
	`"plain"`, `""`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\u4e2d\u0000"`, `"caf\u00e9 é 中"`,
	`"\ud83d\ude00"`, `"\ud83d"`, `"\ude00"`, `"\ud83d\u0041"`, `"\ud83dx"`, `"\ud83d\ud83d\ude00"`,
	`"\ud83d\\"`, `"a\ud800\\u"`, "\"\xff\xfe\"", "\"a\xe2\x82\"", "\"\xed\xa0\x80\"", "\"\\n\xff\"",
	`0`, `-0`, `1`, `-1.5e-3`, `1E400`, `-1e400`, `1e-400`, `4.9e-324`, `1.7976931348623157e308`,
	`123456789012345678901234567890`, `9007199254740993`, `0.1`, `1e+2`,
	`true`, `false`, `null`, `[]`, `{}`, `[[],[[]],{}]`, `[1,"a",true,null,{"b":[2]}]`,
	` { "a" : [ 1 , 2 ] , "b" : { } } `, "\t[\r\n1\n]\n",
	`{"a":1,"a":2}`, `{"a":{"x":1},"a":[1]}`, `{"\u0061":1,"a":2}`, `{"a\"b":1,"":2}`,
	`{"k":"\ud800","\ude00":null}`,
}

func TestValueAgreesWithEncodingJSON(t *testing.T) {
	for _, s := range valueSeeds {
		checkValue(t, []byte(s))
	}
	for _, s := range validSeeds {
		if json.Valid([]byte(s)) { // the nesting at encoding/json's limit too
			checkValue(t, []byte(s))
		}
	}
}

// FuzzValue holds Value to json.Unmarshal into an any on every valid JSON
// value, and to not panicking on anything else.
func FuzzValue(f *testing.F) {
	for _, s := range append(valueSeeds, validSeeds...) {
		if len(s) < 1000 { // the deep nesting only slows the mutations
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			Value(data)
			return
		}
		checkValue(t, data)
	})
}

func checkValue(t *testing.T, data []byte) {
	t.Helper()
	if !json.Valid(data) {
		t.Fatalf("seed %q is not JSON", data)
	}
	var want any
	_ = json.Unmarshal(data, &want) // an out-of-range number is an error, and nil in want
	if got := Value(data); !reflect.DeepEqual(got, want) {
		t.Fatalf("Value(%q) = %#v, json.Unmarshal gives %#v", data, got, want)
	}
}
