package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress shows a running count on a terminal, and nothing otherwise.
type progress struct {
	w     io.Writer
	verb  string
	on    bool
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, verb string) *progress {
	return &progress{w: w, verb: verb, on: isTerminal(w), start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (p *progress) update(n int) {
	if !p.on || time.Since(p.last) < 200*time.Millisecond {
		return
	}
	p.last = time.Now()
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r%s %d entries (%.0f/s)", p.verb, n, rate)
}

func (p *progress) done(n int) {
	if p.on && !p.last.IsZero() {
		fmt.Fprintf(p.w, "\r%s %d entries\n", p.verb, n)
	}
}
