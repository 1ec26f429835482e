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

// A feed remembers about the last doneKept sequences it acknowledged, so
// that a stale copy of one is passed over; others are not done.
func TestOwnSetRemembersRecentAcks(t *testing.T) {
	var o ownSet
	for seq := uint64(1); seq <= 3*doneKept; seq++ {
		o.acked(seq)
	}
	for _, seq := range []uint64{2*doneKept + 1, 3 * doneKept} {
		if !o.wasDone(seq) {
			t.Errorf("seq %d, among the last %d acknowledged, is not done", seq, doneKept)
		}
	}
	for _, seq := range []uint64{1, 2 * doneKept, 3*doneKept + 1} {
		if o.wasDone(seq) {
			t.Errorf("seq %d is done: it was acknowledged more than %d ago, or never", seq, doneKept)
		}
	}
}
