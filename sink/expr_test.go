package sink

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/auditrelay/auditrelay/audit"
)

// fuzzExprs are filter expressions of the kinds users write, and some
// that walk whatever the entry holds.
var fuzzExprs = []string{
	`objectType == "case_artifact" && details.ioc == true`,
	`details?.severity >= 3 || object?.tlp == 3`,
	`"c2" in (details?.tags ?? [])`,
	`any(details?.artifacts ?? [], {.dataType == "ip"})`,
	`len(toJSON($env)) > 10 && base`,
	`upper(objectType) startsWith "CASE" and not (operation matches "^[Dd]el")`,
	`count(keys(object ?? {}), # startsWith "_") > 1`,
	`all(1..100, {# < 1000}) && sum(map(details?.tags ?? [], len(#))) >= 0`,
}

// odd entries: valid audit entries with the fields a filter reads in
// every type and nesting but the expected one.
var fuzzSeeds = []string{
	`{"operation":"Creation","objectType":"case_artifact","objectId":"a","details":{"ioc":true,"tags":["c2"],"severity":3}}`,
	`{"operation":"create","objectType":"Observable","objectId":"~1","details":null,"object":[]}`,
	`{"operation":"Update","objectType":"case","objectId":"b","details":"text","object":{"tlp":"3","_a":1,"_b":2}}`,
	`{"operation":"Delete","objectType":"case","objectId":"c","details":{"tags":[1,null,{"x":[]}],"artifacts":[{"dataType":"ip"},7]},"base":"yes"}`,
	`{"operation":"delete","objectType":"x","objectId":"d","details":{"ioc":"true","severity":1e308},"objectType":"case_artifact"}`,
	`{"operation":"Creation","objectType":"y","objectId":"e","det\u0061ils":{"ioc":true},"details":{"severity":-0.5}}`,
	`{"operation":"Creation","objectType":"z","objectId":"f","details":{"tags":[[[[[[[[[[[]]]]]]]]]]]}}`,
}

// FuzzExprFilter evaluates every expression over odd entries: it never
// panics, and the filter, which decodes only the fields an expression
// names, agrees with the expression run over the whole decoded entry.
func FuzzExprFilter(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	filters := make([]*exprFilter, len(fuzzExprs))
	for i, src := range fuzzExprs {
		x, err := newExprFilter(src)
		if err != nil {
			f.Fatalf("%s: %v", src, err)
		}
		filters[i] = x
	}
	f.Fuzz(func(t *testing.T, raw string) {
		e, err := audit.Decode([]byte(raw), 1<<16)
		if err != nil {
			return
		}
		var whole map[string]any
		if err := json.Unmarshal(e.Raw, &whole); err != nil {
			t.Fatalf("decoded entry is not a JSON object: %v", err)
		}
		for i, x := range filters {
			out, err := vm.Run(x.program, whole)
			want := err == nil && out == true
			if got := x.match(&e); got != want {
				t.Errorf("%s on %s: filter %v, whole entry %v (%v)", fuzzExprs[i], raw, got, want, err)
			}
		}
	})
}

// TestExprFilterSeeds keeps the fuzz seeds meaningful: one holds, the
// others do not, and only the two fields named are decoded.
func TestExprFilterSeeds(t *testing.T) {
	x, err := newExprFilter(fuzzExprs[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, s := range fuzzSeeds {
		e, err := audit.Decode([]byte(s), 0)
		if err != nil {
			t.Fatalf("seed %s: %v", s, err)
		}
		got = append(got, x.match(&e))
	}
	if want := []bool{true, false, false, false, false, false, false}; !slices.Equal(got, want) {
		t.Errorf("matches %v, want %v", got, want)
	}
	if !slices.Equal(x.fields, []string{"objectType", "details"}) || x.all {
		t.Errorf("fields %q all %v, want objectType and details", x.fields, x.all)
	}
}
