package relay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/nats-io/nats.go/jetstream"
)

// The tests in this file check what a receiver gets on the wire (SPEC §2.2,
// §2.3, §4): auth, headers, Standard Webhooks signatures, filters, the
// slack and thin formats with the event-fetch API, batches and gzip. Each
// runs a real NATS server, a running sidecar and real HTTP receivers.
//
// With AUDITRELAY_WIRE_DUMP=1 and -v, each test logs the requests its
// receivers got, as docs/wire.md shows them.

// wireSecret returns a Standard Webhooks secret made of seed (at least 24
// bytes, as the specification asks).
func wireSecret(seed string) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(seed))
}

// wirePublish publishes one entry and returns its stream sequence.
func wirePublish(t *testing.T, js jetstream.JetStream, data string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := js.Publish(ctx, "thehive.audit.case", []byte(data))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	return ack.Sequence
}

// wireMetric reads one series from the sidecar's /metrics; 0 when absent.
func wireMetric(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	code, _, body := wireGet(t, "http://"+addr+"/metrics", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !wireHasLabels(line, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		return v
	}
	return 0
}

func wireHasLabels(line string, labels []string) bool {
	for _, l := range labels {
		if !strings.Contains(line, l) {
			return false
		}
	}
	return true
}

// waitWireMetric waits until a series reads want.
func waitWireMetric(t *testing.T, addr string, want float64, name string, labels ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%s%v = %v", name, labels, want), func() bool {
		return wireMetric(t, addr, name, labels...) == want
	})
}

// wireGet makes a GET with optional Basic credentials ([2]string{user,
// password}) and returns the status, headers and body.
func wireGet(t *testing.T, url string, basic *[2]string) (int, http.Header, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if basic != nil {
		req.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header, body
}

// wireDump logs what rc got when AUDITRELAY_WIRE_DUMP is set: the source of
// the examples in docs/wire.md.
func wireDump(t *testing.T, rc *receiver) {
	t.Helper()
	if os.Getenv("AUDITRELAY_WIRE_DUMP") == "" {
		return
	}
	for _, r := range rc.requests() {
		names := make([]string, 0, len(r.header))
		for name := range r.header {
			names = append(names, name)
		}
		sort.Strings(names)
		var b strings.Builder
		fmt.Fprintf(&b, "POST %s HTTP/1.1 -> %d\n", r.path, r.code)
		for _, name := range names {
			fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(r.header[name], ", "))
		}
		body := r.body
		if r.header.Get("Content-Encoding") == "gzip" {
			body = []byte(fmt.Sprintf("<%d bytes of gzip>", len(body)))
		}
		fmt.Fprintf(&b, "\n%s\n", body)
		t.Log("\n" + b.String())
	}
}

// byPath returns the requests rc got on path, in arrival order.
func byPath(rc *receiver, path string) []request {
	var out []request
	for _, r := range rc.requests() {
		if r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// TestWireAuthAndHeaders: each TheHive 4 auth type gives its exact
// Authorization header (none gives none), and the configured headers come
// with every request, in both config syntaxes.
func TestWireAuthAndHeaders(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	hdrs := `headers { "X-Tenant" = "soc-1", "x-env" = "test" }`
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
notification.webhook.endpoints = [
  { name = none, url = "%[1]s/none", auth { type = none }, %[2]s }
  { name = basic, url = "%[1]s/basic", auth { type = basic, username = alice, password = "p@ss:word" }, %[2]s }
  { name = bearer, url = "%[1]s/bearer", auth { type = bearer, key = tok-123 }, %[2]s }
  { name = key, url = "%[1]s/key", auth { type = key, key = "ApiKey raw-456" }, %[2]s }
]
webhooks.th3 { url = "%[1]s/th3", auth { type = bearer, key = tok-789 }, %[2]s }
`, rc.URL, hdrs)))
	startRelay(t, cfg)
	raw := entry("Creation", "case", "c1", "c1", 1)
	seq := wirePublish(t, js, raw)

	want := map[string]string{
		"/none":   "",
		"/basic":  "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:p@ss:word")),
		"/bearer": "Bearer tok-123",
		"/key":    "ApiKey raw-456",
		"/th3":    "Bearer tok-789",
	}
	waitFor(t, 10*time.Second, "one request per webhook", func() bool { return len(rc.requests()) == len(want) })
	for path, auth := range want {
		got := byPath(rc, path)
		if len(got) != 1 {
			t.Fatalf("%s got %d requests, want 1", path, len(got))
		}
		checkWireRequest(t, got[0], "THEHIVE_AUDIT."+path[1:]+"."+strconv.FormatUint(seq, 10), raw)
		if v := got[0].header.Values("Authorization"); auth == "" && len(v) != 0 || auth != "" && (len(v) != 1 || v[0] != auth) {
			t.Errorf("%s: Authorization = %q, want %q", path, v, auth)
		}
		if g, w := got[0].header.Get("X-Tenant")+" "+got[0].header.Get("X-Env"), "soc-1 test"; g != w {
			t.Errorf("%s: X-Tenant, X-Env = %q, want %q", path, g, w)
		}
	}
	wireDump(t, rc)
}

// checkWireRequest checks what every unsigned single-entry request of
// format audit carries.
func checkWireRequest(t *testing.T, r request, id, body string) {
	t.Helper()
	want := map[string]string{
		"Content-Type": "application/json", "User-Agent": "auditrelay/test", "Auditrelay-Attempt": "1",
		"Webhook-Id": id, "Webhook-Signature": "", "Webhook-Timestamp": "", "Content-Encoding": "",
	}
	for name, w := range want {
		if g := r.header.Get(name); g != w {
			t.Errorf("%s: %s = %q, want %q", r.path, name, g, w)
		}
	}
	if string(r.body) != body {
		t.Errorf("%s: body\n%s\nwant\n%s", r.path, r.body, body)
	}
}

// TestWireSigning verifies signatures with the Standard Webhooks
// specification's own Go library: one secret, a wrong secret failing, two
// secrets (rotation) verifying with either, and a retry signed anew (new
// timestamp and signature, same webhook-id).
func TestWireSigning(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(r *request, n int) int {
		if r.path == "/retried" && r.header.Get("Auditrelay-Attempt") == "1" {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	one, old, cur, wrong := wireSecret("auditrelay wire test: one secret"),
		wireSecret("auditrelay wire test: old secret"), wireSecret("auditrelay wire test: new secret"),
		wireSecret("auditrelay wire test: wrong secret")
	// initialBackoff = maxBackoff = 1s: the retry is at least a second later,
	// so its webhook-timestamp (whole seconds) must differ.
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks {
  one { url = "%[1]s/one", signing.secret = "%[2]s" }
  rotated { url = "%[1]s/rotated", signing.secret = "%[3]s %[4]s" }
  retried { url = "%[1]s/retried", signing.secret = ["%[2]s"], delivery.retry { initialBackoff = 1s, maxBackoff = 1s } }
}`, rc.URL, one, old, cur)))
	startRelay(t, cfg)
	raw := entry("Update", "case", "c1", "c1", 7)
	wirePublish(t, js, raw)
	waitFor(t, 10*time.Second, "4 requests (retried twice)", func() bool { return len(rc.requests()) == 4 })

	r := byPath(rc, "/one")[0]
	verifyWire(t, r, one)
	if err := wireVerifier(t, wrong).Verify(r.body, r.header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("verify with a wrong secret: %v, want ErrNoMatchingSignature", err)
	}
	r = byPath(rc, "/rotated")[0]
	verifyWire(t, r, old)
	verifyWire(t, r, cur)
	if n := len(strings.Fields(r.header.Get("webhook-signature"))); n != 2 {
		t.Errorf("rotated: %d signatures, want 2: %q", n, r.header.Get("webhook-signature"))
	}
	checkResigned(t, byPath(rc, "/retried"), one, raw)
	wireDump(t, rc)
}

func wireVerifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

// verifyWire checks r's signature with secret, timestamp tolerance included.
func verifyWire(t *testing.T, r request, secret string) {
	t.Helper()
	if err := wireVerifier(t, secret).Verify(r.body, r.header); err != nil {
		t.Errorf("%s attempt %s: %v", r.path, r.header.Get("Auditrelay-Attempt"), err)
	}
}

// checkResigned: attempt 1 (503) and attempt 2 (200) carry the same body
// and webhook-id, different timestamps and signatures, and both verify.
func checkResigned(t *testing.T, got []request, secret, raw string) {
	t.Helper()
	if len(got) != 2 {
		t.Fatalf("retried: %d requests, want 2", len(got))
	}
	a, b := got[0], got[1]
	if a.code != http.StatusServiceUnavailable || b.code != http.StatusOK {
		t.Fatalf("retried: answered %d then %d", a.code, b.code)
	}
	if a.header.Get("Auditrelay-Attempt") != "1" || b.header.Get("Auditrelay-Attempt") != "2" {
		t.Errorf("attempts %q, %q; want 1, 2", a.header.Get("Auditrelay-Attempt"), b.header.Get("Auditrelay-Attempt"))
	}
	if a.header.Get("webhook-id") != b.header.Get("webhook-id") || string(a.body) != raw || string(b.body) != raw {
		t.Errorf("webhook-id %q then %q, bodies %s / %s", a.header.Get("webhook-id"), b.header.Get("webhook-id"), a.body, b.body)
	}
	for _, h := range []string{"webhook-timestamp", "webhook-signature"} {
		if a.header.Get(h) == b.header.Get(h) {
			t.Errorf("%s not recomputed for attempt 2: %q", h, a.header.Get(h))
		}
	}
	verifyWire(t, a, secret)
	verifyWire(t, b, secret)
}

// wireFilterEntry is one entry of the mixed stream and whether each
// filtered webhook should get it.
type wireFilterEntry struct {
	raw                          string
	ops, types, base, orgs, both bool
}

// wireFilterStream mixes TheHive 3 entries (Creation/Update/Delete, no
// organisation) with TheHive 4 ones (create/update/delete, organisation
// name and id). The expectations are written out by hand from SPEC §2.2 and
// §2.3, not computed by sink.Filter.
var wireFilterStream = []wireFilterEntry{
	{raw: entry("Creation", "case", "c1", "c1", 1), ops: true, types: true, base: true},
	{raw: entry("Update", "case_task", "t1", "c1", 2), types: true, base: true, both: true},
	{raw: `{"operation":"Delete","objectType":"case_artifact","objectId":"a1","rootId":"c1","base":false}`, ops: true, types: true},
	{raw: entry("Creation", "alert", "al1", "al1", 4), ops: true, base: true},
	{raw: `{"operation":"create","objectType":"Case","objectId":"~4096","rootId":"~4096","base":true,"organisation":"soc","organisationId":"~111","object":{"title":"Phishing","createdBy":"alice@soc"}}`,
		ops: true, types: true, base: true, orgs: true},
	{raw: `{"operation":"update","objectType":"Task","objectId":"~8192","rootId":"~4096","base":true,"organisation":"other","organisationId":"org-id-2"}`,
		base: true, orgs: true},
	{raw: `{"operation":"delete","objectType":"case_task_log","objectId":"~9","rootId":"~4096","base":false,"organisation":"blocked","organisationId":"org-id-2"}`,
		ops: true, types: true},
	{raw: `{"operation":"Update","objectType":"caseTemplate","objectId":"~10","base":true,"organisation":"nobody","organisationId":"~999"}`,
		base: true},
	{raw: `{"operation":"create","objectType":"alert","objectId":"~11","rootId":"~11","base":true,"organisation":"soc"}`,
		ops: true, base: true, orgs: true},
}

// TestWireFilters: on a mixed stream of TheHive 3 and 4 entries, each
// receiver gets exactly the entries its filter selects, byte for byte, in
// order per rootId, and the others count as filtered.
func TestWireFilters(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
webhooks {
  ops { url = "%[1]s/ops", filter.operations = [Creation, delete] }
  types { url = "%[1]s/types", filter.objectTypes = [case, "case_*"] }
  base { url = "%[1]s/base", filter.baseOnly = true }
  both { url = "%[1]s/both", filter { operations = [update], objectTypes = ["case_*"] } }
}
notification.webhook.endpoints = [ { name = orgs, version = 0, url = "%[1]s/orgs", wsConfig {}, auth { type = none },
  includedTheHiveOrganisations = [soc, org-id-2], excludedTheHiveOrganisations = [blocked] } ]
`, rc.URL)))
	s := startRelay(t, cfg)
	for _, e := range wireFilterStream {
		wirePublish(t, js, e.raw)
	}
	selectors := map[string]func(wireFilterEntry) bool{
		"ops":   func(e wireFilterEntry) bool { return e.ops },
		"types": func(e wireFilterEntry) bool { return e.types },
		"base":  func(e wireFilterEntry) bool { return e.base },
		"orgs":  func(e wireFilterEntry) bool { return e.orgs },
		"both":  func(e wireFilterEntry) bool { return e.both },
	}
	for name, sel := range selectors {
		var want []string
		for _, e := range wireFilterStream {
			if sel(e) {
				want = append(want, e.raw)
			}
		}
		webhook := `webhook="` + name + `"`
		waitWireMetric(t, s.AdminAddr(), float64(len(want)), "auditrelay_deliveries_total", webhook, `outcome="delivered"`)
		waitWireMetric(t, s.AdminAddr(), float64(len(wireFilterStream)-len(want)), "auditrelay_deliveries_total", webhook, `outcome="filtered"`)
		checkSameEntriesInKeyOrder(t, "/"+name, rc.bodies("/"+name), want)
	}
}

// TestWireSlack: format slack sends {"text": ...}, one line per entry with
// operation, object type, title and who, escaped for Slack.
func TestWireSlack(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.chat { url = "%s/chat", format = slack }`, rc.URL)))
	startRelay(t, cfg)
	entries := []string{
		entry("Creation", "case", "c1", "r", 1),
		`{"operation":"update","objectType":"Case","objectId":"~4096","rootId":"r","object":{"title":"Phishing <urgent> & co","updatedBy":"bob@soc","createdBy":"alice@soc"}}`,
		`{"operation":"Delete","objectType":"case_artifact","objectId":"a1","rootId":"r"}`,
	}
	want := []string{
		`Creation case "entry 1" by admin`,
		`Update Case "Phishing &lt;urgent&gt; &amp; co" by bob@soc`,
		`Delete case_artifact a1`,
	}
	for _, e := range entries {
		wirePublish(t, js, e)
	}
	waitFor(t, 10*time.Second, "3 slack messages", func() bool { return len(rc.bodies("/chat")) == len(want) })
	for i, r := range byPath(rc, "/chat") {
		var msg map[string]any
		if err := json.Unmarshal(r.body, &msg); err != nil {
			t.Fatalf("body %s: %v", r.body, err)
		}
		if len(msg) != 1 || msg["text"] != want[i] {
			t.Errorf("message %d = %s, want {\"text\": %q}", i, r.body, want[i])
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("Content-Type = %q", r.header.Get("Content-Type"))
		}
	}
	wireDump(t, rc)
}

// wireFetchKey and wireFetchSecret are auditrelay.admin.fetch in the thin
// test.
const wireFetchKey, wireFetchSecret = "relay-key", "fetch-s3cret"

// TestWireThin: the receiver gets {"webhook":"<name>","eventId":<seq>} and
// nothing else, then fetches the entry from the admin API with ?key&secret
// and with Basic auth, getting the exact published bytes; wrong credentials
// are 401 before anything else; an unknown or disabled webhook, a bad id, an
// entry its filter drops and a purged entry are 404.
func TestWireThin(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`
auditrelay.admin.fetch { key = %q, secret = %q }
webhooks {
  thin { url = "%[3]s/thin", format = thin, filter.operations = [Creation] }
  all { url = "%[3]s/all" }
  off { url = "%[3]s/off", enabled = false }
}`, wireFetchKey, wireFetchSecret, rc.URL)))
	s := startRelay(t, cfg)
	created := entry("Creation", "case", "c1", "c1", 1) + "\n"
	updated := entry("Update", "case", "c1", "c1", 2)
	seq := wirePublish(t, js, created)
	seqFiltered := wirePublish(t, js, updated)
	waitWireMetric(t, s.AdminAddr(), 1, "auditrelay_deliveries_total", `webhook="thin"`, `outcome="filtered"`)
	waitFor(t, 10*time.Second, "both entries at /all", func() bool { return len(rc.bodies("/all")) == 2 })

	got := byPath(rc, "/thin")
	if want := fmt.Sprintf(`{"webhook":"thin","eventId":%d}`, seq); len(got) != 1 || string(got[0].body) != want {
		t.Fatalf("thin bodies = %q, want exactly %s", rc.bodies("/thin"), want)
	}
	base := fmt.Sprintf("http://%s/webhooks/", s.AdminAddr())
	good := "?key=" + wireFetchKey + "&secret=" + wireFetchSecret
	event := fmt.Sprintf("%sthin/events/%d", base, seq)
	checkFetched(t, event+good, nil, created)
	checkFetched(t, event, &[2]string{wireFetchKey, wireFetchSecret}, created)
	// Any enabled webhook can fetch an entry its filter keeps, delivered
	// in full or not: the API reads the stream, not what was announced.
	checkFetched(t, fmt.Sprintf("%sall/events/%d%s", base, seqFiltered, good), nil, updated)

	checkFetchStatus(t, http.StatusUnauthorized, []fetchCase{
		{"no credentials", event, nil},
		{"wrong secret", event + "?key=" + wireFetchKey + "&secret=nope", nil},
		{"wrong key", event + "?key=nope&secret=" + wireFetchSecret, nil},
		{"key only", event + "?key=" + wireFetchKey, nil},
		{"wrong Basic", event, &[2]string{wireFetchKey, "nope"}},
		{"query wins over good Basic", event + "?key=x&secret=y", &[2]string{wireFetchKey, wireFetchSecret}},
		{"unknown webhook", base + "nobody/events/1?key=x&secret=y", nil},
		{"bad id", base + "thin/events/abc", nil},
	})
	checkFetchStatus(t, http.StatusNotFound, []fetchCase{
		{"unknown webhook", base + "nobody/events/1" + good, nil},
		{"disabled webhook", fmt.Sprintf("%soff/events/%d%s", base, seq, good), nil},
		{"id not a number", base + "thin/events/abc" + good, nil},
		{"id zero", base + "thin/events/0" + good, nil},
		{"id negative", base + "thin/events/-1" + good, nil},
		{"id never published", base + "thin/events/999" + good, nil},
		{"filtered out", fmt.Sprintf("%sthin/events/%d%s", base, seqFiltered, good), nil},
	})
	wirePurge(t, js)
	checkFetchStatus(t, http.StatusNotFound, []fetchCase{{"purged", event + good, nil}})
	checkFetchStatus(t, http.StatusUnauthorized, []fetchCase{{"purged, wrong secret", event, &[2]string{wireFetchKey, "nope"}}})
	wireDump(t, rc)
}

// fetchCase is one request to the fetch API.
type fetchCase struct {
	name  string
	url   string
	basic *[2]string
}

func checkFetched(t *testing.T, url string, basic *[2]string, want string) {
	t.Helper()
	code, h, body := wireGet(t, url, basic)
	if code != http.StatusOK || string(body) != want || h.Get("Content-Type") != "application/json" {
		t.Errorf("fetch (basic %v): %d %q %q, want 200 application/json %q", basic != nil, code, h.Get("Content-Type"), body, want)
	}
}

// checkFetchStatus checks each case's status and its JSON error body.
func checkFetchStatus(t *testing.T, want int, cases []fetchCase) {
	t.Helper()
	for _, c := range cases {
		code, h, body := wireGet(t, c.url, c.basic)
		var e struct{ Error string }
		if code != want || h.Get("Content-Type") != "application/json" || json.Unmarshal(body, &e) != nil || e.Error == "" {
			t.Errorf("%s: %d %q %s, want %d with a JSON error", c.name, code, h.Get("Content-Type"), body, want)
		}
		if bytes.Contains(body, []byte(wireFetchSecret)) {
			t.Errorf("%s: the answer shows the fetch secret", c.name)
		}
	}
}

func wirePurge(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err != nil {
		t.Fatalf("purge: %v", err)
	}
}

// TestWireBatches: with batch { maxEntries = 10, maxWait = 200ms } every
// request body is a JSON array of exact published entries, the arrays
// concatenated give every entry in stream order per rootId, each batch is
// signed over its whole body, and a batch keeps its webhook-id across
// attempts (503, then 200). The retry waits longer than maxWait, so other
// batches go out meanwhile and must not carry a later entry of a root that
// the failed batch holds.
func TestWireBatches(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, func(_ *request, n int) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	secret := wireSecret("auditrelay wire test: batch secret")
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(`webhooks.bulk {
  url = "%s/bulk", signing.secret = "%s"
  batch { maxEntries = 10, maxWait = 200ms }
  delivery.retry { initialBackoff = 500ms, maxBackoff = 500ms }
}`, rc.URL, secret)))
	startRelay(t, cfg)
	var want []string
	for i := range 40 {
		want = append(want, entry([]string{"Creation", "Update"}[min(i/12, 1)], "case_task", "t"+strconv.Itoa(i), "c"+strconv.Itoa(i%12), i))
	}
	publish(t, js, "thehive.audit.case", want...)
	waitFor(t, 20*time.Second, "every entry delivered", func() bool { return len(wireElements(t, rc.delivered())) == len(want) })

	checkSameEntriesInKeyOrder(t, "/bulk", wireElements(t, rc.delivered()), want)
	reqs := rc.requests()
	largest := 0
	for _, r := range reqs {
		verifyWire(t, r, secret)
		largest = max(largest, len(wireElements(t, [][]byte{r.body})))
	}
	if largest < 2 || largest > 10 {
		t.Errorf("largest batch has %d entries, want 2 to 10", largest)
	}
	checkDistinctIDs(t, reqs)
	a, b := reqs[0], wireRetryOf(t, reqs, reqs[0])
	if string(a.body) != string(b.body) {
		t.Errorf("batch retried with another body:\n%s\n%s", a.body, b.body)
	}
	wireDump(t, rc)
}

// checkDistinctIDs: every request answered 2xx carries its own webhook-id.
func checkDistinctIDs(t *testing.T, reqs []request) {
	t.Helper()
	seen := map[string]bool{}
	for _, r := range reqs {
		id := r.header.Get("webhook-id")
		if r.code != http.StatusOK {
			continue
		}
		if id == "" || seen[id] {
			t.Errorf("delivered batch with webhook-id %q missing or repeated", id)
		}
		seen[id] = true
	}
}

// wireRetryOf finds the second attempt of the batch first was.
func wireRetryOf(t *testing.T, reqs []request, first request) request {
	t.Helper()
	if first.code != http.StatusServiceUnavailable || first.header.Get("Auditrelay-Attempt") != "1" {
		t.Fatalf("first request: %d, attempt %s", first.code, first.header.Get("Auditrelay-Attempt"))
	}
	id := first.header.Get("webhook-id")
	for _, r := range reqs[1:] {
		if r.header.Get("webhook-id") == id {
			if r.header.Get("Auditrelay-Attempt") != "2" || r.code != http.StatusOK {
				t.Errorf("next request with webhook-id %s: attempt %s, %d", id, r.header.Get("Auditrelay-Attempt"), r.code)
			}
			return r
		}
	}
	t.Fatalf("no second attempt with webhook-id %s", id)
	return request{}
}

// wireElements parses each body as a JSON array and returns its elements'
// bytes, in order.
func wireElements(t *testing.T, bodies [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, b := range bodies {
		var elems []json.RawMessage
		if err := json.Unmarshal(b, &elems); err != nil {
			t.Fatalf("batch body is not a JSON array: %v\n%s", err, b)
		}
		for _, e := range elems {
			out = append(out, e)
		}
	}
	return out
}

// TestWireGzip: with ws.compressionEnabled the body is gzip, says so, and
// decompresses to the entry exactly; a signature covers the bytes sent.
func TestWireGzip(t *testing.T) {
	srv, js := natsServer(t)
	rc := newReceiver(t, nil)
	secret := wireSecret("auditrelay wire test: gzip secret")
	cfg := parseConfig(t, testConfig(srv, fmt.Sprintf(
		`webhooks.zip { url = "%s/zip", ws.compressionEnabled = true, signing.secret = "%s" }`, rc.URL, secret)))
	startRelay(t, cfg)
	raw := entry("Creation", "case", "c1", "c1", 1)
	wirePublish(t, js, raw)
	waitFor(t, 10*time.Second, "one request", func() bool { return len(rc.requests()) == 1 })
	r := rc.requests()[0]
	if r.header.Get("Content-Encoding") != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", r.header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("body is not gzip: %v", err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != raw {
		t.Errorf("decompressed body = %q (%v), want %q", plain, err, raw)
	}
	verifyWire(t, r, secret)
	wireDump(t, rc)
}
