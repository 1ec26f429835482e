package sink

import (
	"slices"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// wireFixture is a realistic published entry: TheHive 3 shape (Creation,
// snake_case object types, no organisation) or TheHive 4 shape (lower-case
// operations, capitalised types, organisation name and id).
type wireFixture struct {
	name string
	raw  string
}

var wireFixtures = []wireFixture{
	{"th3-case-create", `{"operation":"Creation","objectType":"case","objectId":"AV6FZsTj0KeanEfOQfd_","startDate":1505476659427,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:426","details":{"title":"Test case for webhook","severity":2,"tlp":2,"status":"Open"},"base":true,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"caseId":1445,"title":"Test case for webhook","severity":2,"createdBy":"admin","createdAt":1505476659402,"_type":"case","_id":"AV6FZsTj0KeanEfOQfd_"}}`},
	{"th3-task-create", `{"operation":"Creation","objectType":"case_task","objectId":"AV6FZsVS0KeanEfOQfeB","startDate":1505476659490,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:426","details":{"title":"Malware analysis","status":"Waiting","group":"default"},"base":false,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"title":"Malware analysis","status":"Waiting","createdBy":"admin","_type":"case_task","_parent":"AV6FZsTj0KeanEfOQfd_"}}`},
	{"th3-artifact-create", `{"operation":"Creation","objectType":"case_artifact","objectId":"a1d1b1c6e4b0f2f6d1e0c3b2a1908f7e","startDate":1505476701120,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:431","details":{"data":"203.0.113.7","dataType":"ip","message":"C2 server","tlp":2},"base":true,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"data":"203.0.113.7","dataType":"ip","createdBy":"jdoe","_type":"case_artifact"}}`},
	{"th3-case-update", `{"operation":"Update","objectType":"case","objectId":"AV6FZsTj0KeanEfOQfd_","startDate":1505477102210,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:452","details":{"status":"Resolved","resolutionStatus":"TruePositive"},"base":true,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"caseId":1445,"title":"Test case for webhook","createdBy":"admin","updatedBy":"jdoe","_type":"case"}}`},
	{"th3-log-create", `{"operation":"Creation","objectType":"case_task_log","objectId":"AV6FaB0r0KeanEfOQfeK","startDate":1505477001000,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:440","details":{"message":"Sample sent to sandbox"},"base":true,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"message":"Sample sent to sandbox","createdBy":"jdoe","_type":"case_task_log"}}`},
	{"th3-job-update", `{"operation":"Update","objectType":"case_artifact_job","objectId":"AV6FbA1x0KeanEfOQfeZ","startDate":1505477050000,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:445","details":{"status":"Success","endDate":1505477050000},"base":false,"rootId":"AV6FZsTj0KeanEfOQfd_","object":{"analyzerId":"VirusTotal_GetReport_3_0","status":"Success","_type":"case_artifact_job"}}`},
	{"th3-alert-delete", `{"operation":"Delete","objectType":"alert","objectId":"ce2c00f17132359cb3c50dfbb1901810","startDate":1505478000000,"requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:460","details":{},"base":true,"rootId":"ce2c00f17132359cb3c50dfbb1901810"}`},
	{"th4-case-create", `{"operation":"create","details":{"title":"Phishing wave","severity":3},"objectType":"Case","objectId":"~4264","base":true,"startDate":1594899999424,"rootId":"~4264","requestId":"7d1c5a2e0fa4b8c1:-4a9e2f10:1735e6b2a11:-8000:212","object":{"_id":"~4264","_type":"Case","number":52,"title":"Phishing wave","createdBy":"analyst@soc-eu.example"},"organisationId":"~4192","organisation":"soc-eu"}`},
	{"th4-task-update", `{"operation":"update","details":{"status":"InProgress"},"objectType":"Task","objectId":"~8360","base":true,"startDate":1594900061232,"rootId":"~8240","requestId":"7d1c5a2e0fa4b8c1:-4a9e2f10:1735e6b2a11:-8000:230","object":{"_id":"~8360","_type":"Task","title":"Contain host","status":"InProgress","createdBy":"lead@soc-us.example","updatedBy":"analyst@soc-us.example"},"organisationId":"~8200","organisation":"soc-us"}`},
	{"th4-observable-delete", `{"operation":"delete","details":{},"objectType":"Observable","objectId":"~12480","base":true,"startDate":1594900102030,"rootId":"~4264","requestId":"7d1c5a2e0fa4b8c1:-4a9e2f10:1735e6b2a11:-8000:241","organisationId":"~4192","organisation":"soc-eu"}`},
	{"th4-alert-create", `{"operation":"Create","details":{"title":"Suspicious login","source":"siem"},"objectType":"Alert","objectId":"~20528","base":true,"startDate":1594900200000,"rootId":"~20528","requestId":"7d1c5a2e0fa4b8c1:-4a9e2f10:1735e6b2a11:-8000:250","object":{"_type":"Alert","title":"Suspicious login","createdBy":"connector@partner.example"},"organisationId":"~30001","organisation":"partner"}`},
}

// wireEntries decodes every fixture with audit.Decode, so the parsed fields
// are the ones the engine sees.
func wireEntries(t testing.TB) map[string]*audit.Entry {
	t.Helper()
	out := make(map[string]*audit.Entry, len(wireFixtures))
	for _, f := range wireFixtures {
		e, err := audit.Decode([]byte(f.raw), 0)
		if err != nil {
			t.Fatalf("decode fixture %s: %v", f.name, err)
		}
		out[f.name] = &e
	}
	return out
}

func wireNames(except ...string) []string {
	var names []string
	for _, f := range wireFixtures {
		if !slices.Contains(except, f.name) {
			names = append(names, f.name)
		}
	}
	slices.Sort(names)
	return names
}

func TestFilterMatch(t *testing.T) {
	entries := wireEntries(t)
	all := wireNames()
	tests := []struct {
		name   string
		filter config.Filter
		want   []string
	}{
		{"zero value: everything", config.Filter{}, all},
		{"defaults: everything", config.DefaultWebhook().Filter, all},
		{"creation, TheHive 3 and 4", config.Filter{Operations: []string{"Creation"}},
			[]string{"th3-artifact-create", "th3-case-create", "th3-log-create", "th3-task-create", "th4-alert-create", "th4-case-create"}},
		{"update and delete", config.Filter{Operations: []string{"Update", "Delete"}},
			[]string{"th3-alert-delete", "th3-case-update", "th3-job-update", "th4-observable-delete", "th4-task-update"}},
		{"unknown operation matches nothing", config.Filter{Operations: []string{"Bogus"}}, nil},
		{"exact type, any case", config.Filter{ObjectTypes: []string{"case"}},
			[]string{"th3-case-create", "th3-case-update", "th4-case-create"}},
		{"prefix type", config.Filter{ObjectTypes: []string{"case_*"}},
			[]string{"th3-artifact-create", "th3-job-update", "th3-log-create", "th3-task-create"}},
		{"prefix includes the bare name", config.Filter{ObjectTypes: []string{"case*"}},
			[]string{"th3-artifact-create", "th3-case-create", "th3-case-update", "th3-job-update", "th3-log-create", "th3-task-create", "th4-case-create"}},
		{"star type", config.Filter{ObjectTypes: []string{"*"}}, all},
		{"several types", config.Filter{ObjectTypes: []string{"alert", "Task", "case_task"}},
			[]string{"th3-alert-delete", "th3-task-create", "th4-alert-create", "th4-task-update"}},
		{"base only", config.Filter{BaseOnly: true}, wireNames("th3-task-create", "th3-job-update")},
		{"included by name drops entries without organisation", config.Filter{IncludedOrganisations: []string{"soc-eu"}},
			[]string{"th4-case-create", "th4-observable-delete"}},
		{"included by id", config.Filter{IncludedOrganisations: []string{"~8200"}}, []string{"th4-task-update"}},
		{"included name and id mixed", config.Filter{IncludedOrganisations: []string{"~8200", "partner"}},
			[]string{"th4-alert-create", "th4-task-update"}},
		{"excluded by name", config.Filter{IncludedOrganisations: []string{"*"}, ExcludedOrganisations: []string{"soc-eu"}},
			wireNames("th4-case-create", "th4-observable-delete")},
		{"excluded by id, included default", config.Filter{ExcludedOrganisations: []string{"~4192"}},
			wireNames("th4-case-create", "th4-observable-delete")},
		{"excluded wins over included", config.Filter{IncludedOrganisations: []string{"soc-eu", "soc-us"}, ExcludedOrganisations: []string{"~4192"}},
			[]string{"th4-task-update"}},
		{"excluded star drops all", config.Filter{ExcludedOrganisations: []string{"*"}}, nil},
		{"explicit empty included is everything", config.Filter{IncludedOrganisations: []string{}}, all},
		{"everything combined", config.Filter{Operations: []string{"Creation", "Update"}, ObjectTypes: []string{"case*", "task"}, BaseOnly: true},
			[]string{"th3-artifact-create", "th3-case-create", "th3-case-update", "th3-log-create", "th4-case-create", "th4-task-update"}},
		{"types across versions", config.Filter{ObjectTypes: []string{"case*", "alert"}, Operations: []string{"Creation", "Update", "Delete"}},
			[]string{"th3-alert-delete", "th3-artifact-create", "th3-case-create", "th3-case-update", "th3-job-update", "th3-log-create", "th3-task-create", "th4-alert-create", "th4-case-create"}},
		{"excluded type, any case", config.Filter{ExcludeObjectTypes: []string{"CASE_ARTIFACT", "Observable"}},
			wireNames("th3-artifact-create", "th4-observable-delete")},
		{"excluded type wins over a matching prefix", config.Filter{ObjectTypes: []string{"case_*"}, ExcludeObjectTypes: []string{"case_task_log", "case_artifact_job"}},
			[]string{"th3-artifact-create", "th3-task-create"}},
		{"expr over the entry's fields", config.Filter{Expr: `objectType == "case_artifact" && details.tlp >= 2`},
			[]string{"th3-artifact-create"}},
		{"expr failing on an entry drops it", config.Filter{Expr: `details.severity > 2`},
			[]string{"th4-case-create"}},
		{"expr with optional chaining and builtins", config.Filter{Expr: `lower(object?.createdBy ?? "") endsWith ".example" || organisation == "soc-us"`},
			[]string{"th4-alert-create", "th4-case-create", "th4-task-update"}},
		{"expr over $env sees the whole entry", config.Filter{Expr: `"organisation" in $env && $env.base`},
			[]string{"th4-alert-create", "th4-case-create", "th4-observable-delete", "th4-task-update"}},
		{"all filters must hold", config.Filter{Operations: []string{"Creation"}, ExcludeObjectTypes: []string{"alert"}, Expr: `organisation != nil`},
			[]string{"th4-case-create"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFilter(tt.filter)
			var got []string
			for _, name := range all {
				if f.Match(entries[name]) {
					got = append(got, name)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("matched %q\nwant    %q", got, tt.want)
			}
		})
	}
}

func TestFilterMatchAllocatesNothing(t *testing.T) {
	entries := wireEntries(t)
	f := NewFilter(config.Filter{
		Operations: []string{"Creation", "Update"}, ObjectTypes: []string{"case", "case_*", "Alert"},
		IncludedOrganisations: []string{"soc-eu", "~8200"}, ExcludedOrganisations: []string{"partner"},
	})
	allocs := testing.AllocsPerRun(100, func() {
		for _, e := range entries {
			f.Match(e)
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	entries := wireEntries(b)
	list := make([]*audit.Entry, 0, len(entries))
	for _, name := range wireNames() {
		list = append(list, entries[name])
	}
	f := NewFilter(config.Filter{
		Operations: []string{"Creation", "Update"}, ObjectTypes: []string{"case", "case_*", "Alert"},
		IncludedOrganisations: []string{"*"}, ExcludedOrganisations: []string{"partner", "~9999"},
	})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		f.Match(list[i%len(list)])
	}
}
