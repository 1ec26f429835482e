package relay

import (
	"net/http/httptest"
	"testing"

	"github.com/auditrelay/auditrelay/config"
)

// TestFetchAuthorized covers every way of presenting the fetch credentials,
// and unset credentials authorizing nobody.
func TestFetchAuthorized(t *testing.T) {
	set := config.Fetch{Key: "k1", Secret: "s1"}
	tests := []struct {
		name   string
		want   config.Fetch
		query  string
		basic  []string
		result bool
	}{
		{"query", set, "?key=k1&secret=s1", nil, true},
		{"basic", set, "", []string{"k1", "s1"}, true},
		{"nothing", set, "", nil, false},
		{"wrong secret", set, "?key=k1&secret=s2", nil, false},
		{"wrong key", set, "?key=k2&secret=s1", nil, false},
		{"secret as key", set, "?key=s1&secret=k1", nil, false},
		{"prefix", set, "?key=k1&secret=s", nil, false},
		{"longer", set, "?key=k1&secret=s11", nil, false},
		{"key only", set, "?key=k1", []string{"k1", "s1"}, false},
		{"wrong basic", set, "", []string{"k1", "x"}, false},
		{"unset, empty given", config.Fetch{}, "?key=&secret=", nil, false},
		{"unset, basic empty", config.Fetch{}, "", []string{"", ""}, false},
		{"key unset", config.Fetch{Secret: "s1"}, "?key=&secret=s1", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/webhooks/w/events/1"+tt.query, nil)
			if tt.basic != nil {
				req.SetBasicAuth(tt.basic[0], tt.basic[1])
			}
			if got := fetchAuthorized(req, tt.want); got != tt.result {
				t.Errorf("fetchAuthorized = %v, want %v", got, tt.result)
			}
		})
	}
}
