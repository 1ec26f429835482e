package audit_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
)

// benchEntry is a TheHive-shaped entry of about 1.5 KB.
var benchEntry = []byte(`{"operation":"Update","objectType":"case_task","objectId":"AV6FaBv_0KeanEfOQfeB","startDate":1505476659427,` +
	`"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:426","rootId":"AV6FZsTj0KeanEfOQfd_","base":true,` +
	`"details":{"status":"InProgress","title":"Investigate suspicious logon","description":"` + strings.Repeat("Lateral movement on the DC. ", 20) + `"},` +
	`"object":{"_type":"case_task","title":"Investigate suspicious logon","status":"InProgress","owner":"analyst","createdBy":"admin","updatedBy":"analyst","description":"` +
	strings.Repeat("Check EDR telemetry. ", 25) + `"}}`)

// BenchmarkDecode is the per-entry cost of reading an entry (once per
// entry, shared by every webhook's consumer).
func BenchmarkDecode(b *testing.B) {
	b.SetBytes(int64(len(benchEntry)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := audit.Decode(benchEntry, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalReference is what encoding/json takes to read the same
// fields into a struct: the reference Decode is measured against.
func BenchmarkUnmarshalReference(b *testing.B) {
	var w struct {
		Operation, ObjectType, ObjectID, RootID string
		Details, Object                         json.RawMessage
	}
	b.SetBytes(int64(len(benchEntry)))
	b.ReportAllocs()
	for b.Loop() {
		if err := json.Unmarshal(benchEntry, &w); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTitle is the Slack summary's lazy read of details/object.
func BenchmarkTitle(b *testing.B) {
	e, err := audit.Decode(benchEntry, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Title()
		_ = e.Who()
	}
}
