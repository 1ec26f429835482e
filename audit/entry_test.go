package audit_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// theHive3Entry is SPEC §1's example, as TheHive 3 publishes it.
const theHive3Entry = `{ "operation": "Creation", "objectType": "case", "objectId": "AV6FZsTj0KeanEfOQfd_",
  "startDate": 1505476659427, "requestId": "13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:426",
  "details": {"title": "Test case for webhook", "severity": 2}, "base": true,
  "rootId": "AV6FZsTj0KeanEfOQfd_", "object": {"caseId": 1445, "title": "...", "_type": "case"} }`

// theHive4Entry is a TheHive 4 audit entry: lower-case operation, the
// organisation, and an object updated by someone.
const theHive4Entry = `{"operation":"update","objectType":"Case","objectId":"~41152","rootId":"~41152",
  "requestId":"e4b8c4ea:-7ffe","startDate":1620000000000,"organisation":"SOC","organisationId":"~8264",
  "details":{"status":"Resolved"},"object":{"_type":"Case","title":"Phishing","updatedBy":"analyst@soc","createdBy":"admin@soc"}}`

func TestDecodeReadsTheHive3And4(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		want want
	}{
		{"TheHive 3", theHive3Entry, want{audit.Entry{
			Operation: audit.Creation, ObjectType: "case", ObjectID: "AV6FZsTj0KeanEfOQfd_", RootID: "AV6FZsTj0KeanEfOQfd_",
			Base: true, RequestID: "13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:426", StartDate: 1505476659427,
		}, "Test case for webhook", ""}},
		{"TheHive 4", theHive4Entry, want{audit.Entry{
			Operation: audit.Update, ObjectType: "Case", ObjectID: "~41152", RootID: "~41152",
			RequestID: "e4b8c4ea:-7ffe", StartDate: 1620000000000, Organisation: "SOC", OrganisationID: "~8264",
		}, "Phishing", "analyst@soc"}},
		{"title and author fall back to object", `{"operation":"delete","objectType":"alert","objectId":"a1",
			"details":{"severity":1},"object":{"title":"from object","createdBy":"creator"}}`, want{audit.Entry{
			Operation: audit.Delete, ObjectType: "alert", ObjectID: "a1"}, "from object", "creator",
		}},
		{"details and object of other shapes", `{"operation":"Delete","objectType":"log","objectId":"l1",
			"details":[1,2],"object":"gone"}`, want{audit.Entry{Operation: audit.Delete, ObjectType: "log", ObjectID: "l1"}, "", ""}},
		{"leading white space", " \r\n\t" + `{"operation":"Update","objectType":"case_task","objectId":"t1"}`,
			want{audit.Entry{Operation: audit.Update, ObjectType: "case_task", ObjectID: "t1"}, "", ""}},
		// SPEC §1: everything but the three required fields is passed
		// through; an optional field of another type reads as zero.
		{"optional fields of unexpected types", `{"operation":"Creation","objectType":"case","objectId":"c1",
			"startDate":1.5e12,"base":"true","rootId":7,"organisation":{"name":"SOC"},"requestId":null,"details":{"title":3}}`,
			want{audit.Entry{Operation: audit.Creation, ObjectType: "case", ObjectID: "c1", StartDate: 1500000000000}, "", ""}},
		{"escaped strings", `{"operation":"Upd\u0061te","objectType":"case\u005ftask","objectId":"t\"1","details":{"title":"a\nb"}}`,
			want{audit.Entry{Operation: audit.Update, ObjectType: "case_task", ObjectID: `t"1`}, "a\nb", ""}},
		{"nested braces and quotes in strings", `{"details":{"title":"x } ] \" {"},"operation":"Delete","objectType":"case","objectId":"c","object":{"a":[{"b":"}"}],"updatedBy":"u"}}`,
			want{audit.Entry{Operation: audit.Delete, ObjectType: "case", ObjectID: "c"}, "x } ] \" {", "u"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := []byte(tc.raw)
			got, err := audit.Decode(raw, 1<<20)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			checkSameBytes(t, raw, got.Raw)
			checkEntry(t, got, tc.want)
		})
	}
}

// want is what a test expects of a decoded entry.
type want struct {
	audit.Entry
	title, who string
}

// checkEntry compares the parsed fields and the summary, not Raw.
func checkEntry(t *testing.T, got audit.Entry, w want) {
	t.Helper()
	g := want{Entry: got, title: got.Title(), who: got.Who()}
	g.Entry = audit.Entry{Operation: got.Operation, ObjectType: got.ObjectType, ObjectID: got.ObjectID, RootID: got.RootID,
		Base: got.Base, RequestID: got.RequestID, StartDate: got.StartDate, Organisation: got.Organisation, OrganisationID: got.OrganisationID}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("Decode:\n got %+v\nwant %+v", g, w)
	}
}

// checkSameBytes checks that raw was neither copied nor rewritten: Raw is
// the very slice Decode was given.
func checkSameBytes(t *testing.T, raw, got []byte) {
	t.Helper()
	if len(got) != len(raw) || cap(got) != cap(raw) || len(raw) > 0 && &got[0] != &raw[0] {
		t.Fatalf("Raw is not the slice given to Decode (len %d/%d, cap %d/%d)", len(got), len(raw), cap(got), cap(raw))
	}
}

func TestDecodeNormalisesOperationsInAnyCase(t *testing.T) {
	for op, want := range map[string]string{
		"Creation": audit.Creation, "creation": audit.Creation, "CREATION": audit.Creation, "cReAtIoN": audit.Creation,
		"create": audit.Creation, "Create": audit.Creation, "CREATE": audit.Creation,
		"Update": audit.Update, "update": audit.Update, "UPDATE": audit.Update,
		"Delete": audit.Delete, "delete": audit.Delete, "DeLeTe": audit.Delete,
	} {
		raw := []byte(`{"operation":"` + op + `","objectType":"case","objectId":"c1"}`)
		e, err := audit.Decode(raw, 0)
		if err != nil {
			t.Errorf("%s: %v", op, err)
			continue
		}
		if e.Operation != want {
			t.Errorf("%s: Operation = %q, want %q", op, e.Operation, want)
		}
	}
}

func TestDecodeRejectsWithExactReason(t *testing.T) {
	for _, tc := range []struct {
		name, raw, reason string
		max               int64
	}{
		{"missing operation", `{"objectType":"case","objectId":"c1"}`, `missing required field "operation" (or "action")`, 0},
		{"null operation", `{"operation":null,"objectType":"case","objectId":"c1"}`, `missing required field "operation" (or "action")`, 0},
		{"unknown action", `{"action":"merge","objectType":"Case","objectId":"~1"}`, `field "action": "merge" is not Creation, Update or Delete`, 0},
		{"null operation and null action", `{"operation":null,"action":null,"objectType":"case","objectId":"c1"}`, `missing required field "operation" (or "action")`, 0},
		{"unknown operation", `{"operation":"Merge","objectType":"case","objectId":"c1"}`, `field "operation": "Merge" is not Creation, Update or Delete`, 0},
		{"empty operation", `{"operation":"","objectType":"case","objectId":"c1"}`, `field "operation": "" is not Creation, Update or Delete`, 0},
		{"operation with spaces", `{"operation":" Creation","objectType":"case","objectId":"c1"}`, `field "operation": " Creation" is not Creation, Update or Delete`, 0},
		{"missing objectType", `{"operation":"Creation","objectId":"c1"}`, `missing required field "objectType"`, 0},
		{"empty objectType", `{"operation":"Creation","objectType":"","objectId":"c1"}`, `missing required field "objectType"`, 0},
		{"null objectType", `{"operation":"Creation","objectType":null,"objectId":"c1"}`, `missing required field "objectType"`, 0},
		{"missing objectId", `{"operation":"Creation","objectType":"case"}`, `missing required field "objectId"`, 0},
		{"empty objectId", `{"operation":"Creation","objectType":"case","objectId":""}`, `missing required field "objectId"`, 0},
		{"invalid UTF-8", "{\"operation\":\"Creation\",\"objectType\":\"case\",\"objectId\":\"\xff\xfe\"}", "not valid UTF-8", 0},
		{"truncated UTF-8", "{\"operation\":\"Creation\",\"objectType\":\"case\xc3\",\"objectId\":\"c1\"}", "not valid UTF-8", 0},
		{"array", `[{"operation":"Creation","objectType":"case","objectId":"c1"}]`, "not a JSON object", 0},
		{"string", `"Creation"`, "not a JSON object", 0},
		{"empty", ``, "not a JSON object", 0},
		{"white space only", " \n\t", "not a JSON object", 0},
		{"byte order mark", "\ufeff" + `{"operation":"Creation","objectType":"case","objectId":"c1"}`, "not a JSON object", 0},
		{"truncated", `{"operation":"Creation","objectType":"case"`, "not JSON: unexpected end of JSON input", 0},
		{"trailing data", `{"operation":"Creation","objectType":"case","objectId":"c1"} {}`, "not JSON: invalid character '{' after top-level value", 0},
		{"trailing comma", `{"operation":"Creation","objectType":"case","objectId":"c1",}`, "not JSON: invalid character '}' looking for beginning of object key string", 0},
		{"too large", `{"operation":"Creation","objectType":"case","objectId":"c1"}`, "entry of 60 bytes is larger than maxEntryBytes (59)", 59},
		// The size is checked first: an oversized message is not even parsed.
		{"too large and not JSON", strings.Repeat("x", 11), "entry of 11 bytes is larger than maxEntryBytes (10)", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := audit.Decode([]byte(tc.raw), tc.max)
			checkInvalid(t, err, tc.reason)
		})
	}
}

// checkInvalid checks that err is an *InvalidError wrapping ErrInvalid with
// exactly reason, and that the reason can go into a NATS header.
func checkInvalid(t *testing.T, err error, reason string) {
	t.Helper()
	var inv *audit.InvalidError
	if !errors.As(err, &inv) || !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("Decode error = %v (%T), want an *InvalidError wrapping ErrInvalid", err, err)
	}
	if inv.Reason != reason {
		t.Errorf("Reason = %q, want %q", inv.Reason, reason)
	}
	if err.Error() != "invalid audit entry: "+reason {
		t.Errorf("Error() = %q", err.Error())
	}
}

// TestDecodeRejectsRequiredFieldsOfWrongType pins that a required field of
// another JSON type is invalid and that its reason names the field; the
// wording comes from encoding/json and is not pinned.
func TestDecodeRejectsRequiredFieldsOfWrongType(t *testing.T) {
	for field, raw := range map[string]string{
		"operation":  `{"operation":1,"objectType":"case","objectId":"c1"}`,
		"objectType": `{"operation":"Creation","objectType":["case"],"objectId":"c1"}`,
		"objectId":   `{"operation":"Creation","objectType":"case","objectId":{"id":"c1"}}`,
	} {
		_, err := audit.Decode([]byte(raw), 0)
		var inv *audit.InvalidError
		if !errors.As(err, &inv) || !errors.Is(err, audit.ErrInvalid) {
			t.Errorf("%s: Decode error = %v, want an *InvalidError", field, err)
			continue
		}
		if !strings.Contains(inv.Reason, field) {
			t.Errorf("%s: Reason %q does not name the field", field, inv.Reason)
		}
	}
}

func TestDecodeSizeLimit(t *testing.T) {
	raw := []byte(`{"operation":"Creation","objectType":"case","objectId":"c1"}`)
	for _, max := range []int64{0, -1, int64(len(raw)), int64(len(raw)) + 1} {
		e, err := audit.Decode(raw, max)
		if err != nil {
			t.Errorf("max %d: %v", max, err)
			continue
		}
		checkSameBytes(t, raw, e.Raw)
	}
}

// TestDecodeKeepsBytes checks that Decode neither copies nor rewrites what
// it is given, whatever the spacing, escapes and extra fields.
func TestDecodeKeepsBytes(t *testing.T) {
	raw := []byte(`{ "objectType" : "case_task", "operation":"update", "objectId":"t1", "extra": [1, 2.50, "\u00e9"],` +
		` "details":{"title":"é ü \u00e9 \ud83d\ude00"} }   `)
	buf := make([]byte, len(raw), len(raw)+16)
	copy(buf, raw)
	e, err := audit.Decode(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkSameBytes(t, buf, e.Raw)
	if !bytes.Equal(buf, raw) {
		t.Errorf("Decode changed its input:\n got %s\nwant %s", buf, raw)
	}
	if e.Title() != "é ü é 😀" {
		t.Errorf("Title = %q", e.Title())
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		theHive3Entry, theHive4Entry,
		`{"operation":"create","objectType":"alert","objectId":"a"}`,
		`{"operation":"DELETE","objectType":"case","objectId":"c","details":null,"object":null}`,
		`{"operation":"Update","objectType":"x","objectId":"y","details":{"title":1},"object":{"updatedBy":[]}}`,
		`{"operation":"Creation"}`, `[]`, `{}`, ``, `null`, "{\"operation\":\"\xff\"}",
		`{"operation":"Creation","objectType":"case","objectId":"c1","startDate":1.5}`,
	} {
		f.Add([]byte(s), int64(0))
	}
	f.Add([]byte(theHive3Entry), int64(64))
	f.Fuzz(func(t *testing.T, raw []byte, max int64) {
		orig := bytes.Clone(raw)
		e, err := audit.Decode(raw, max)
		if !bytes.Equal(raw, orig) {
			t.Fatal("Decode changed its input")
		}
		if err != nil {
			checkFuzzInvalid(t, err)
			return
		}
		checkFuzzEntry(t, raw, max, e)
	})
}

// checkFuzzInvalid checks what the dead letter of a rejected message needs:
// an *InvalidError whose reason fits a NATS header.
func checkFuzzInvalid(t *testing.T, err error) {
	var inv *audit.InvalidError
	if !errors.As(err, &inv) || !errors.Is(err, audit.ErrInvalid) {
		t.Fatalf("error %v (%T) is not an *InvalidError", err, err)
	}
	if inv.Reason == "" || strings.ContainsAny(inv.Reason, "\r\n") || !utf8.ValidString(inv.Reason) {
		t.Fatalf("reason %q cannot go into the Auditrelay-Reason header", inv.Reason)
	}
}

// checkFuzzEntry checks a successful decode: Raw is the input itself, and
// the entry is what SPEC §1 requires.
func checkFuzzEntry(t *testing.T, raw []byte, max int64, e audit.Entry) {
	checkSameBytes(t, raw, e.Raw)
	if max > 0 && int64(len(raw)) > max {
		t.Fatalf("an entry of %d bytes passed maxEntryBytes %d", len(raw), max)
	}
	if !utf8.Valid(raw) || !json.Valid(raw) {
		t.Fatal("accepted invalid UTF-8 or JSON")
	}
	// Keys match exactly, as TheHive writes them (encoding/json's struct
	// decoding would also match "OPERATION"); the last duplicate wins.
	var fields map[string]json.RawMessage
	var op string
	if err := json.Unmarshal(raw, &fields); err != nil || json.Unmarshal(fields["operation"], &op) != nil {
		t.Fatalf("accepted an entry encoding/json cannot read: %v", err)
	}
	if e.Operation != config.NormaliseOperation(op) || e.Operation == "" {
		t.Fatalf("Operation %q from %q is not normalised", e.Operation, op)
	}
	if e.ObjectType == "" || e.ObjectID == "" {
		t.Fatalf("accepted an empty objectType or objectId: %+v", e)
	}
}

// TestDecodeReadsTheHive5Action: TheHive 5's audit objects spell the
// operation `action` (SPEC §1); `operation` wins when both are there.
func TestDecodeReadsTheHive5Action(t *testing.T) {
	for raw, want := range map[string]string{
		`{"_type":"Audit","action":"create","objectType":"Case","objectId":"~4264"}`:                      audit.Creation,
		`{"_type":"Audit","action":"Update","objectType":"Case","objectId":"~4264"}`:                      audit.Update,
		`{"_type":"Audit","action":"delete","objectType":"Alert","objectId":"~4264"}`:                     audit.Delete,
		`{"operation":"Delete","action":"create","objectType":"Case","objectId":"~4264"}`:                 audit.Delete,
		`{"operation":null,"action":"update","objectType":"Case","objectId":"~4264","details":{"a":"b"}}`: audit.Update,
	} {
		e, err := audit.Decode([]byte(raw), 0)
		if err != nil {
			t.Errorf("%s: %v", raw, err)
			continue
		}
		if e.Operation != want {
			t.Errorf("%s: Operation = %q, want %q", raw, e.Operation, want)
		}
	}
}

// TestIdentity: a repeat of an event is the same entry whatever its
// bytes' order; TheHive 4's copy for another organisation, another
// operation or another request is not.
func TestIdentity(t *testing.T) {
	id := func(raw string) string {
		t.Helper()
		e, err := audit.Decode([]byte(raw), 0)
		if err != nil {
			t.Fatal(err)
		}
		return e.Identity()
	}
	base := id(theHive4Entry)
	same := map[string]string{
		"reordered and respaced": `{"objectId":"~41152","objectType":"Case","operation":"update","startDate":1620000000000,
			"requestId":"e4b8c4ea:-7ffe","organisationId":"~8264"}`,
		"operation in another case": `{"operation":"Update","objectType":"Case","objectId":"~41152","requestId":"e4b8c4ea:-7ffe","startDate":1620000000000,"organisationId":"~8264"}`,
	}
	for name, raw := range same {
		if got := id(raw); got != base {
			t.Errorf("%s: identity %s, want %s", name, got, base)
		}
	}
	other := map[string]string{
		"another organisation": `{"operation":"update","objectType":"Case","objectId":"~41152","requestId":"e4b8c4ea:-7ffe","startDate":1620000000000,"organisationId":"~9999"}`,
		"another request":      `{"operation":"update","objectType":"Case","objectId":"~41152","requestId":"e4b8c4ea:-7fff","startDate":1620000000000,"organisationId":"~8264"}`,
		"another operation":    `{"operation":"delete","objectType":"Case","objectId":"~41152","requestId":"e4b8c4ea:-7ffe","startDate":1620000000000,"organisationId":"~8264"}`,
		"another time":         `{"operation":"update","objectType":"Case","objectId":"~41152","requestId":"e4b8c4ea:-7ffe","startDate":1620000000001,"organisationId":"~8264"}`,
	}
	for name, raw := range other {
		if got := id(raw); got == base {
			t.Errorf("%s: same identity as the original", name)
		}
	}
	// Without startDate, only byte-identical repeats are the same entry.
	a := `{"action":"update","objectType":"Case","objectId":"~1","requestId":"r1","details":{"title":"a"}}`
	b := `{"action":"update","objectType":"Case","objectId":"~1","requestId":"r1","details":{"title":"b"}}`
	if id(a) != id(a) || id(a) == id(b) {
		t.Error("entries without startDate: want identity by bytes")
	}
}
