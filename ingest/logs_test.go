package ingest_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/ingest"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRejectionLogs: one line per rejected request, with its status and
// reason, never a credential (the configured one or the one sent) and
// never the body.
func TestRejectionLogs(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	var logs lockedBuffer
	cfg := ingestConfig()
	cfg.Auth = config.Auth{Type: "bearer", Key: "configured-key-1"}
	cfg.MaxEntryBytes = 1024
	s, err := ingest.New(cfg, ingest.Options{Store: e.src, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = s.Run(ctx) }()

	auth := func(key string) http.Header {
		h := playWS()
		h.Set("Authorization", "Bearer "+key)
		return h
	}
	codes := []int{
		post(t, nil, http.MethodPost, s.URL(), []byte(theHive5Body), auth("sent-key-2")).code,
		post(t, nil, http.MethodPost, s.URL(), []byte(`{"body-marker-3":`), auth("configured-key-1")).code,
		post(t, nil, http.MethodPost, s.URL(), []byte(`{"body-marker-4":"`+strings.Repeat("x", 2000)+`"}`), auth("configured-key-1")).code,
		post(t, nil, http.MethodGet, s.URL()+"path-secret-5", nil, auth("configured-key-1")).code,
		post(t, nil, http.MethodPost, s.URL(), []byte(theHive5Body), auth("configured-key-1")).code,
	}
	if want := []int{401, 400, 413, 405, 200}; !slices.Equal(codes, want) {
		t.Fatalf("codes %v, want %v", codes, want)
	}
	out := logs.String()
	if n := strings.Count(out, "ingest request rejected"); n != 4 {
		t.Errorf("%d rejection lines, want 4:\n%s", n, out)
	}
	for _, secret := range []string{"configured-key-1", "sent-key-2", "body-marker-3", "body-marker-4", "path-secret-5"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs show %s:\n%s", secret, out)
		}
	}
	for _, want := range []string{"status=401", "status=400", "status=413", "status=405"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
}

// TestShortDuplicateWindowWarned: an existing audit stream whose duplicate
// window is shorter than the ingest needs is warned about when the source
// binds it (`check` reads files only and cannot see it).
func TestShortDuplicateWindowWarned(t *testing.T) {
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"thehive.audit.>"},
		Duplicates: 2 * time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, ingestOn := range []bool{false, true} {
		var logs lockedBuffer
		src, err := audit.Connect(natsConfig(srv.ClientURL()), audit.Options{DeadLetterSubject: dlSubject, Ingest: ingestOn,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := src.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		src.Close()
		warned := strings.Contains(logs.String(), "duplicate window is shorter") &&
			strings.Contains(logs.String(), "nats stream edit "+streamName+" --dupe-window 10m")
		if warned != ingestOn {
			t.Errorf("ingest %v: warned %v:\n%s", ingestOn, warned, logs.String())
		}
	}
}
