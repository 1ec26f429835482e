package ingest_test

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// theHive3Bodies are the seed entries of examples/entries.jsonl in TheHive
// 3's shape (the first is the example of TheHive 3's webhook documentation,
// byte for byte): what TheHive 3 POSTs to each of its `webhooks`.
func theHive3Bodies(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("../examples/entries.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Bytes(); !bytes.Contains(line, []byte(`"organisation`)) && len(line) > 0 {
			out = append(out, bytes.Clone(line))
		}
	}
	if len(out) < 8 {
		t.Fatalf("want the TheHive 3 seed entries, got %d", len(out))
	}
	return out
}

// theHive4Orgs is one TheHive 4 audit event (webhook version 0) as TheHive
// 4 sends it to an endpoint: one POST per organisation that sees the case,
// identical but for organisation and organisationId.
var theHive4Orgs = []string{
	`{"operation":"Creation","details":{"title":"Phishing report from finance","severity":2,"tlp":2,"pap":2,"tags":["phishing"]},"objectType":"case","objectId":"~41418752","base":true,"startDate":1618329013471,"rootId":"~41418752","requestId":"5b1a7c1e2d3f4a5b:6c7d8e9f:1789abcdef0:-8000:101","object":{"_id":"~41418752","id":"~41418752","createdBy":"analyst@soc.example.org","createdAt":1618329013402,"_type":"case","caseId":58,"title":"Phishing report from finance","description":"User forwarded a suspicious invoice mail","severity":2,"startDate":1618329013000,"owner":"analyst@soc.example.org","flag":false,"tlp":2,"pap":2,"tags":["phishing"],"status":"Open","customFields":{},"stats":{},"permissions":["manageCase"]},"organisationId":"~8272","organisation":"soc"}`,
	`{"operation":"Creation","details":{"title":"Phishing report from finance","severity":2,"tlp":2,"pap":2,"tags":["phishing"]},"objectType":"case","objectId":"~41418752","base":true,"startDate":1618329013471,"rootId":"~41418752","requestId":"5b1a7c1e2d3f4a5b:6c7d8e9f:1789abcdef0:-8000:101","object":{"_id":"~41418752","id":"~41418752","createdBy":"analyst@soc.example.org","createdAt":1618329013402,"_type":"case","caseId":58,"title":"Phishing report from finance","description":"User forwarded a suspicious invoice mail","severity":2,"startDate":1618329013000,"owner":"analyst@soc.example.org","flag":false,"tlp":2,"pap":2,"tags":["phishing"],"status":"Open","customFields":{},"stats":{},"permissions":["manageCase"]},"organisationId":"~8400","organisation":"cert"}`,
}

// theHive5Body is a TheHive 5 audit object as its webhook notifier sends
// it: the operation is spelled `action` (SPEC §1), the object type is
// capitalised, and there is no startDate.
const theHive5Body = `{"_id":"~122896568","_type":"Audit","_createdBy":"analyst@soc.example.org","_createdAt":1700000000123,"action":"update","mainAction":true,"requestId":"7d4c0f2a9b1e6d3c:-4a2b1c3d:18b9f0e1a2c:-8000:311","objectId":"~81924176","objectType":"Case","rootId":"~81924176","details":{"status":"Resolved","resolutionStatus":"TruePositive","summary":"Contained"},"context":{"_id":"~81924176","_type":"Case","number":112,"title":"Beacon to known C2"},"object":{"_id":"~81924176","_type":"Case","number":112,"title":"Beacon to known C2","severity":3,"status":"Resolved","stage":"Closed","assignee":"analyst@soc.example.org","_updatedBy":"analyst@soc.example.org"},"organisation":"soc","organisationId":"~8272"}`

// TestStoresWhatTheHiveSends POSTs the exact bodies of TheHive 3, 4 and 5
// with Play WS's headers and reads each from the stream right after its
// 200: stored before the answer, byte for byte, on <subject>.<objectType>,
// with the entry's identity as message id; each repeat is answered
// duplicate with the same sequence and stored once, while TheHive 4's
// copies for two organisations are two entries.
func TestStoresWhatTheHiveSends(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	s := e.start(t, ingestConfig())
	bodies := append(theHive3Bodies(t), []byte(theHive4Orgs[0]), []byte(theHive4Orgs[1]), []byte(theHive5Body))
	seqs := map[uint64]bool{}
	for i, body := range bodies {
		r := post(t, nil, http.MethodPost, s.URL()+"thehive/webhook", body, playWS())
		if r.code != http.StatusOK || r.body["message"] != "stored" {
			t.Fatalf("body %d: %d %s, want 200 stored", i, r.code, r.raw)
		}
		seq := r.seq(t)
		seqs[seq] = true
		m := e.stored(t, seq) // read right after the answer: stored before it
		if !bytes.Equal(m.Data, body) {
			t.Errorf("body %d: stream holds %q, want the body byte for byte", i, m.Data)
		}
		ent, err := audit.Decode(body, 0)
		if err != nil {
			t.Fatal(err)
		}
		if want := "thehive.audit." + config.SubjectToken(ent.ObjectType); m.Subject != want {
			t.Errorf("body %d: subject %s, want %s", i, m.Subject, want)
		}
		if got := m.Header.Get(nats.MsgIdHdr); got != ent.Identity() {
			t.Errorf("body %d: Nats-Msg-Id %q, want %q", i, got, ent.Identity())
		}
	}
	if len(seqs) != len(bodies) {
		t.Fatalf("%d bodies stored under %d sequences: TheHive 4's two organisations must stay two entries", len(bodies), len(seqs))
	}
	for i, body := range bodies {
		r := post(t, nil, http.MethodPost, s.URL(), body, playWS())
		if r.code != http.StatusOK || r.body["message"] != "duplicate" || !seqs[r.seq(t)] {
			t.Errorf("repeat of body %d: %d %s, want 200 duplicate with the first sequence", i, r.code, r.raw)
		}
	}
	if n := e.count(t, streamName, "thehive.audit.>"); n != uint64(len(bodies)) {
		t.Errorf("stream holds %d entries, want %d (each stored once)", n, len(bodies))
	}
	wantCounts(t, e, map[string]float64{"stored": float64(len(bodies)), "duplicate": float64(len(bodies))})
}

// wantCounts checks auditrelay_ingest_requests_total: every result is a
// series (0 unless in want).
func wantCounts(t *testing.T, e *env, want map[string]float64) {
	t.Helper()
	got := resultCounts(t, e)
	if len(got) != 6 {
		t.Errorf("auditrelay_ingest_requests_total has %d series, want 6: %v", len(got), got)
	}
	for _, result := range []string{"stored", "duplicate", "invalid", "unauthorized", "too_large", "unavailable"} {
		if v, ok := got[result]; !ok || v != want[result] {
			t.Errorf("requests{result=%s} = %v (present %v), want %v", result, v, ok, want[result])
		}
	}
}

func resultCounts(t *testing.T, e *env) map[string]float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() == "auditrelay_ingest_requests_total" {
			for _, m := range mf.GetMetric() {
				out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// TestRejects: a body that is not an entry is 400 and kept unchanged on
// <deadLetter.subject>._invalid; one over maxEntryBytes is 413 and kept
// without its body; another method is 405; nothing of them reaches the
// audit stream.
func TestRejects(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	cfg := ingestConfig()
	cfg.MaxEntryBytes = 2048
	s := e.start(t, cfg)

	for _, tc := range []struct{ body, reason string }{
		{`not json`, "not a JSON object"},
		{`{"operation":"Creation","objectType":"case"`, "not JSON"},
		{`{"operation":"Creation","objectType":"case"}`, `missing required field "objectId"`},
		{`[` + theHive5Body + `]`, "not a JSON object"},
	} {
		r := post(t, nil, http.MethodPost, s.URL(), []byte(tc.body), playWS())
		if r.code != http.StatusBadRequest || !strings.Contains(r.body["error"].(string), tc.reason) {
			t.Errorf("%s: %d %s, want 400 with %q", tc.body, r.code, r.raw, tc.reason)
		}
		dl := e.lastDeadLetter(t)
		if string(dl.Data) != tc.body || !strings.Contains(dl.Header.Get(audit.HeaderReason), tc.reason) {
			t.Errorf("%s: dead letter %q with reason %q", tc.body, dl.Data, dl.Header.Get(audit.HeaderReason))
		}
	}

	big := []byte(`{"operation":"Creation","objectType":"case","objectId":"c1","details":{"description":"` + strings.Repeat("x", 2048) + `"}}`)
	r := post(t, nil, http.MethodPost, s.URL(), big, playWS())
	if r.code != http.StatusRequestEntityTooLarge {
		t.Errorf("%d bytes: %d %s, want 413", len(big), r.code, r.raw)
	}
	dl := e.lastDeadLetter(t)
	if len(dl.Data) != 0 || dl.Header.Get(audit.HeaderBody) != "omitted" || !strings.Contains(dl.Header.Get(audit.HeaderReason), "maxEntryBytes (2048)") {
		t.Errorf("too large: dead letter of %d bytes, headers %v; want one without its body", len(dl.Data), dl.Header)
	}

	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		r := post(t, nil, m, s.URL(), []byte(theHive5Body), playWS())
		if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Errorf("%s: %d Allow %q, want 405 Allow POST", m, r.code, r.header.Get("Allow"))
		}
	}
	if n := e.count(t, streamName, "thehive.audit.>"); n != 0 {
		t.Errorf("audit stream holds %d entries, want none", n)
	}
	wantCounts(t, e, map[string]float64{"invalid": 4, "too_large": 1})
}

// TestAuth: each auth type of a TheHive 4 endpoint is checked; wrong or
// missing credentials are 401 with WWW-Authenticate and store nothing.
func TestAuth(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	for _, tc := range []struct {
		auth      config.Auth
		right     string
		wrong     []string
		challenge string
	}{
		{config.Auth{Type: "basic", Username: "thehive", Password: "s3cret"}, "Basic dGhlaGl2ZTpzM2NyZXQ=",
			[]string{"", "Basic dGhlaGl2ZTpzM2NyZXQ", "Basic dGhlaGl2ZTp3cm9uZw==", "Bearer s3cret"}, "Basic"},
		{config.Auth{Type: "bearer", Key: "tok-1"}, "Bearer tok-1", []string{"", "Bearer tok-2", "tok-1", "Bearer tok-1x"}, "Bearer"},
		{config.Auth{Type: "key", Key: "Splunk abc"}, "Splunk abc", []string{"", "Splunk abd", "Bearer Splunk abc"}, "Key"},
	} {
		t.Run(string(tc.auth.Type), func(t *testing.T) {
			cfg := ingestConfig()
			cfg.Auth = tc.auth
			s := e.start(t, cfg)
			before := e.count(t, streamName, "thehive.audit.>")
			for _, h := range tc.wrong {
				hdr := playWS()
				if h != "" {
					hdr.Set("Authorization", h)
				}
				r := post(t, nil, http.MethodPost, s.URL(), []byte(theHive5Body), hdr)
				if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), tc.challenge+" ") {
					t.Errorf("Authorization %q: %d WWW-Authenticate %q, want 401 %s", h, r.code, r.header.Get("WWW-Authenticate"), tc.challenge)
				}
			}
			if n := e.count(t, streamName, "thehive.audit.>"); n != before {
				t.Errorf("unauthorized requests stored %d entries", n-before)
			}
			hdr := playWS()
			hdr.Set("Authorization", tc.right)
			body := strings.Replace(theHive5Body, `"requestId":"`, `"requestId":"`+string(tc.auth.Type), 1)
			if r := post(t, nil, http.MethodPost, s.URL(), []byte(body), hdr); r.code != http.StatusOK {
				t.Errorf("right credentials: %d %s", r.code, r.raw)
			}
		})
	}
}

// TestNATSDown: while NATS is down the answer is 503 with Retry-After and
// nothing else; once it is back, the same POST is stored.
func TestNATSDown(t *testing.T) {
	dir := t.TempDir()
	srv := natstest.StartAt(t, -1, dir)
	port := natstest.Port(srv)
	e := newEnv(t, srv)
	s := e.start(t, ingestConfig())
	body := []byte(theHive4Orgs[0])

	srv.Shutdown()
	srv.WaitForShutdown()
	r := post(t, nil, http.MethodPost, s.URL(), body, playWS())
	if r.code != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || r.body["error"] == nil {
		t.Fatalf("NATS down: %d Retry-After %q %s, want 503 with Retry-After and an error", r.code, r.header.Get("Retry-After"), r.raw)
	}

	e.srv = natstest.StartAt(t, port, dir)
	deadline := time.Now().Add(20 * time.Second)
	for {
		r = post(t, nil, http.MethodPost, s.URL(), body, playWS())
		if r.code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		if r.code != http.StatusServiceUnavailable {
			t.Fatalf("while reconnecting: %d %s, want 503 or 200", r.code, r.raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r.code != http.StatusOK {
		t.Fatalf("NATS back: %d %s, want 200 within 20s", r.code, r.raw)
	}
	_, e.js = natstest.Connect(t, e.srv)
	if m := e.stored(t, r.seq(t)); !bytes.Equal(m.Data, body) {
		t.Errorf("stored %q", m.Data)
	}
	if got := resultCounts(t, e)["unavailable"]; got < 1 {
		t.Errorf("unavailable = %v, want at least 1", got)
	}
}
