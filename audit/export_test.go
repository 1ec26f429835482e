package audit

import "time"

// SetOneOffInactive sets how long the server keeps a one-off consumer that
// nobody reads, for a test that outwaits it; it returns the undo.
func SetOneOffInactive(d time.Duration) (undo func()) {
	old := oneOffInactive
	oneOffInactive = d
	return func() { oneOffInactive = old }
}
