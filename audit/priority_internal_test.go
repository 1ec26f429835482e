package audit

import "testing"

func TestPinningSupported(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"2.10.22", false},
		{"2.9.0", false},
		{"2.11.0", true},
		{"2.11.0-RC.1", true},
		{"2.15.2", true},
		{"v2.12.1", true},
		{"3.0.0", true},
		{"1.99.0", false},
		{"", false},
		{"garbage", false},
	} {
		if got := pinningSupported(tc.version); got != tc.want {
			t.Errorf("pinningSupported(%q) = %v, want %v", tc.version, got, tc.want)
		}
	}
}
