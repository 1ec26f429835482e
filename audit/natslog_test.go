package audit

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The NATS client's drops from a full pull buffer are reported once per
// slowEvery with how many times they happened since; any other error is
// logged each time.
func TestNATSErrorsReportDropsOncePerPeriod(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1_700_000_000, 0)
	n := &natsErrors{log: slog.New(slog.NewTextHandler(&out, nil)), now: func() time.Time { return clock }}
	lines := func() []string { return strings.Split(strings.TrimSpace(out.String()), "\n") }

	n.handle(nil, nil, nats.ErrSlowConsumer)
	for range 5 {
		clock = clock.Add(time.Second)
		n.handle(nil, nil, nats.ErrSlowConsumer)
	}
	if l := lines(); len(l) != 1 || !strings.Contains(l[0], "times=1") || !strings.Contains(l[0], "full pull buffer") {
		t.Fatalf("after 6 drops within %s, want one report of the first, got:\n%s", slowEvery, out.String())
	}
	clock = clock.Add(slowEvery)
	n.handle(nil, nil, nats.ErrSlowConsumer)
	if l := lines(); len(l) != 2 || !strings.Contains(l[1], "times=6") {
		t.Fatalf("a drop %s later must report the 5 held back and itself (times=6), got:\n%s", slowEvery, out.String())
	}
	n.handle(nil, nil, errors.New("nats: permissions violation"))
	n.handle(nil, nil, errors.New("nats: permissions violation"))
	if l := lines(); len(l) != 4 || !strings.Contains(l[3], "permissions violation") {
		t.Fatalf("other NATS errors must be logged each time, got:\n%s", out.String())
	}
}
