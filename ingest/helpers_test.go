package ingest_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/ingest"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

const (
	streamName = "THEHIVE_AUDIT"
	dlSubject  = "auditrelay.deadletter"
)

// env is a real NATS server with the audit stream, an audit.Source as the
// ingest's store, and a client to read the streams back.
type env struct {
	srv *server.Server
	src *audit.Source
	js  jetstream.JetStream
	reg *prometheus.Registry
}

func natsConfig(url string) config.NATS {
	n := config.Default().NATS
	n.URL = url
	n.Stream.Name = streamName
	return n
}

func newEnv(t testing.TB, srv *server.Server) *env {
	t.Helper()
	src, err := audit.Connect(natsConfig(srv.ClientURL()), audit.Options{
		DeadLetterSubject: dlSubject, Ingest: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := src.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	_, js := natstest.Connect(t, srv)
	return &env{srv: srv, src: src, js: js, reg: prometheus.NewRegistry()}
}

func ingestConfig() config.Ingest {
	in := config.Default().Ingest
	in.Enabled, in.Listen = true, "127.0.0.1:0"
	return in
}

// start runs an ingest server until the test ends; its metrics are in a
// new e.reg. Its shutdown timeout is above net/http's 5 s for a connection
// that never sent a request (a sender's transport may dial one it then
// does not use): Shutdown waits that long for such a connection.
func (e *env) start(t testing.TB, cfg config.Ingest) *ingest.Server {
	t.Helper()
	e.reg = prometheus.NewRegistry()
	s, err := ingest.New(cfg, ingest.Options{Store: e.src, Registerer: e.reg,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ShutdownTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s
}

// playWS are the headers TheHive's HTTP client (Play WS over
// AsyncHttpClient) sends with a webhook POST.
func playWS() http.Header {
	return http.Header{"Content-Type": {"application/json"}, "User-Agent": {"AHC/2.1"}, "Accept": {"*/*"}}
}

type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func post(t testing.TB, c *http.Client, method, url string, body []byte, h http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	if c == nil {
		c = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{}}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &r.body); err != nil {
		t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, url, resp.StatusCode, raw)
	}
	return r
}

func (r reply) seq(t testing.TB) uint64 {
	t.Helper()
	f, ok := r.body["seq"].(float64)
	if !ok {
		t.Fatalf("no seq in %s", r.raw)
	}
	return uint64(f)
}

// stored reads the audit stream's message at seq.
func (e *env) stored(t testing.TB, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, streamName)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		t.Fatalf("audit stream seq %d: %v", seq, err)
	}
	return m
}

// count is the number of messages in stream on subjects matching filter.
func (e *env) count(t testing.TB, stream, filter string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// lastDeadLetter is the last message on <dlSubject>._invalid.
func (e *env) lastDeadLetter(t testing.TB) *jetstream.RawStreamMsg {
	t.Helper()
	m := natstest.LastMsg(t, e.js, audit.DeadLetterStream, dlSubject+"."+audit.InvalidToken)
	if m == nil {
		t.Fatal("no invalid dead letter")
	}
	return m
}

func tlsClient(t testing.TB, roots *tls.Config) *http.Client {
	t.Helper()
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: roots}}
}
