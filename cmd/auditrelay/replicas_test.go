package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// arrival is one request as an endpoint saw it.
type arrival struct {
	entry int // the entry's index (objectId t<entry>)
	root  string
	id    string // webhook-id
	at    time.Time
}

// orderRecorder records every request per webhook path in arrival order,
// so tests can check duplicates and per-key order across replicas.
type orderRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	got   map[string][]arrival
	delay time.Duration
}

var entryFields = regexp.MustCompile(`"objectId":"t(\d+)","rootId":"(r\d+)"`)

func newOrderRecorder(t *testing.T, delay time.Duration) *orderRecorder {
	s := &orderRecorder{got: map[string][]arrival{}, delay: delay}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		m := entryFields.FindSubmatch(body)
		if m == nil {
			http.Error(w, "not a test entry", http.StatusBadRequest)
			return
		}
		n, _ := strconv.Atoi(string(m[1]))
		s.mu.Lock()
		s.got[r.URL.Path] = append(s.got[r.URL.Path], arrival{entry: n, root: string(m[2]), id: r.Header.Get("webhook-id"), at: time.Now()})
		s.mu.Unlock()
		time.Sleep(s.delay)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *orderRecorder) arrivals(path string) []arrival {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]arrival(nil), s.got[path]...)
}

// unique is how many different entries reached path.
func (s *orderRecorder) unique(path string) int {
	seen := map[int]bool{}
	for _, a := range s.arrivals(path) {
		seen[a.entry] = true
	}
	return len(seen)
}

// check reports each duplicate at path whose webhook-id differs from the
// first's, and returns the number of duplicates.
func (s *orderRecorder) check(t *testing.T, path string) (dups int) {
	t.Helper()
	first := map[int]string{}
	for _, a := range s.arrivals(path) {
		id, seen := first[a.entry]
		if !seen {
			first[a.entry] = a.id
			continue
		}
		dups++
		if a.id != id {
			t.Errorf("%s: t%d again with webhook-id %q, first was %q", path, a.entry, a.id, id)
		}
	}
	return dups
}

// checkOrder reports entries whose first arrival at path came after a
// later entry of the same rootId.
func (s *orderRecorder) checkOrder(t *testing.T, path string) {
	t.Helper()
	for _, e := range s.outOfOrder(path) {
		t.Error(e)
	}
}

// outOfOrder describes each entry whose first arrival at path came after a
// later entry of its rootId.
func (s *orderRecorder) outOfOrder(path string) []string {
	var out []string
	seen := map[int]bool{}
	last := map[string]int{}
	for _, a := range s.arrivals(path) {
		if seen[a.entry] {
			continue
		}
		seen[a.entry] = true
		if prev, ok := last[a.root]; ok && prev > a.entry {
			out = append(out, fmt.Sprintf("%s: t%d of %s first reached the webhook after t%d", path, a.entry, a.root, prev))
		}
		last[a.root] = max(last[a.root], a.entry)
	}
	return out
}

// writeClusterConfig is writeConfig for a NATS cluster: the sidecar knows
// every server and the stream it creates has stream.replicas = 3.
func writeClusterConfig(t *testing.T, servers []string, admin, webhooks string) string {
	t.Helper()
	quoted := make([]string, len(servers))
	for i, s := range servers {
		quoted[i] = strconv.Quote(s)
	}
	file := filepath.Join(t.TempDir(), "application.conf")
	conf := fmt.Sprintf(`auditrelay {
  nats { servers = [%s], stream.replicas = 3 }
  admin.listen = "%s"
  shutdownTimeout = 10s
  log { level = info, format = text }
}
%s
`, strings.Join(quoted, ", "), admin, webhooks)
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// startReplicas starts n sidecars with the same webhooks on servers.
func startReplicas(t *testing.T, n int, servers []string, webhooks string) []*sidecar {
	t.Helper()
	out := make([]*sidecar, n)
	for i := range out {
		admin := anyPort
		out[i] = startSidecar(t, writeClusterConfig(t, servers, admin, webhooks))
	}
	return out
}

// gauge reads one sample of metric from a sidecar (-1 when absent).
func gauge(t *testing.T, s *sidecar, metric string) float64 {
	t.Helper()
	for _, l := range strings.Split(scrape(t, s.admin), "\n") {
		if v, ok := strings.CutPrefix(l, metric+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return -1
}

// activeOf lists, per sidecar, auditrelay_webhook_active for webhook.
func activeOf(t *testing.T, reps []*sidecar, webhook string) []float64 {
	out := make([]float64, len(reps))
	for i, s := range reps {
		if s.cmd.ProcessState != nil {
			out[i] = -1 // dead
			continue
		}
		out[i] = gauge(t, s, `auditrelay_webhook_active{webhook="`+webhook+`"}`)
	}
	return out
}

// onlyActive is the index of the one replica active for webhook, or -1
// when not exactly one is.
func onlyActive(t *testing.T, reps []*sidecar, webhook string) int {
	who := -1
	for i, v := range activeOf(t, reps, webhook) {
		if v == 1 {
			if who >= 0 {
				return -1
			}
			who = i
		}
	}
	return who
}

type readyBody struct {
	Status   string            `json:"status"`
	Webhooks map[string]string `json:"webhooks"`
	Intake   string            `json:"intake"`
}

func readyz(t *testing.T, s *sidecar) (int, readyBody) {
	t.Helper()
	resp, err := http.Get("http://" + s.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b readyBody
	if err := json.NewDecoder(resp.Body).Decode(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func killHard(t *testing.T, s *sidecar) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.done <- nil
}

const replicaWebhooks = `webhooks {
  a { url = "%[1]s/a" }
  o { url = "%[1]s/o", delivery.orderBy = objectId }
  n { url = "%[1]s/n", delivery.orderBy = none }
}`

// TestReplicasShareWorkInOrder: three sidecars with one config on a
// 3-node cluster with an R3 stream. Every entry reaches every webhook
// exactly once (no failure, so no duplicate at all), in order per rootId;
// each ordered webhook and the intake have exactly one active replica,
// which delivers all of it, the others standing by and still ready; the
// orderBy = none webhook is shared by the replicas.
func TestReplicasShareWorkInOrder(t *testing.T) {
	srvs := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, srvs[0])
	rc := newOrderRecorder(t, time.Millisecond)
	reps := startReplicas(t, 3, natstest.ClusterURLs(srvs), fmt.Sprintf(replicaWebhooks, rc.URL))

	all := entries(3000)
	publishAll(t, js, all)
	waitUntil(t, 120*time.Second, "every entry at every webhook", func() bool {
		return rc.unique("/a") == len(all) && rc.unique("/o") == len(all) && rc.unique("/n") == len(all)
	})
	// Settled consumers can redeliver nothing: any extra delivery is in.
	waitSettled(t, js, len(all), "auditrelay-a", "auditrelay-o", "auditrelay-n")
	for _, path := range []string{"/a", "/o", "/n"} {
		if dups := rc.check(t, path); dups != 0 {
			t.Errorf("%s: %d duplicates without any failure", path, dups)
		}
	}
	rc.checkOrder(t, "/a")
	for _, w := range []string{"a", "o"} {
		waitUntil(t, 10*time.Second, "exactly one active replica for "+w, func() bool { return onlyActive(t, reps, w) >= 0 })
		who := onlyActive(t, reps, w)
		metric := `auditrelay_deliveries_total{outcome="delivered",webhook="` + w + `"}`
		if got := gauge(t, reps[who], metric); got != float64(len(all)) {
			t.Errorf("webhook %s: active replica %d delivered %v, want all %d", w, who, got, len(all))
		}
	}
	// Roles are read from the consumers every 2 s: the first look may not
	// have happened yet on every replica.
	waitUntil(t, 10*time.Second, "every replica's role in webhook n known", func() bool {
		for _, v := range activeOf(t, reps, "n") {
			if v != 1 {
				return false
			}
		}
		return true
	})
	checkSharedSpread(t, reps, len(all))
	checkReadyRoles(t, reps)
}

// checkSharedSpread: the orderBy = none webhook is active on every replica
// and each of them delivered a real share: JetStream serves the replicas'
// waiting pulls in turn, so each gets a third or so; a tenth is the floor.
func checkSharedSpread(t *testing.T, reps []*sidecar, total int) {
	t.Helper()
	sum, sharing := 0.0, 0
	for i, s := range reps {
		if v := gauge(t, s, `auditrelay_webhook_active{webhook="n"}`); v != 1 {
			t.Errorf("replica %d: auditrelay_webhook_active{webhook=\"n\"} = %v, want 1 (shared)", i, v)
		}
		got := gauge(t, s, `auditrelay_deliveries_total{outcome="delivered",webhook="n"}`)
		sum += got
		if got >= float64(total/10) {
			sharing++
		}
		t.Logf("replica %d delivered %v of webhook n", i, got)
	}
	if sum != float64(total) || sharing != len(reps) {
		t.Errorf("webhook n: %v delivered, %d replicas with a tenth or more; want %d, shared by all %d", sum, sharing, total, len(reps))
	}
}

// checkReadyRoles: every replica is ready (standby is healthy) and, per
// ordered consumer, exactly one says active in /readyz.
func checkReadyRoles(t *testing.T, reps []*sidecar) {
	t.Helper()
	active := map[string]int{}
	for i, s := range reps {
		code, b := readyz(t, s)
		if code != http.StatusOK || b.Status != "ready" {
			t.Errorf("replica %d: /readyz %d %q, want 200 ready", i, code, b.Status)
		}
		if b.Webhooks["n"] != "shared" {
			t.Errorf("replica %d: webhook n role %q, want shared", i, b.Webhooks["n"])
		}
		for _, w := range []string{"a", "o"} {
			if r := b.Webhooks[w]; r != "active" && r != "standby" {
				t.Errorf("replica %d: webhook %s role %q", i, w, r)
			} else if r == "active" {
				active[w]++
			}
		}
		if b.Intake == "active" {
			active["intake"]++
		}
	}
	for _, w := range []string{"a", "o", "intake"} {
		if active[w] != 1 {
			t.Errorf("%s: %d replicas say active in /readyz, want exactly 1", w, active[w])
		}
	}
}

// TestReplicaKilledAnotherTakesOver: of two sidecars, the one active for
// the ordered webhook is killed with SIGKILL mid-stream. The other takes
// over within 30 s (SPEC §4), nothing is lost, repeats carry their first
// webhook-id, and entries first reach the webhook in order per rootId.
func TestReplicaKilledAnotherTakesOver(t *testing.T) {
	srvs := natstest.StartCluster(t, 3)
	_, js := natstest.Connect(t, srvs[0])
	rc := newOrderRecorder(t, 5*time.Millisecond)
	webhooks := fmt.Sprintf(`webhooks { a { url = "%[1]s/a", delivery.maxInFlight = 8 }, n { url = "%[1]s/n", delivery.orderBy = none, delivery.maxInFlight = 8 } }`, rc.URL)
	reps := startReplicas(t, 2, natstest.ClusterURLs(srvs), webhooks)

	all := entries(3000)
	publishAll(t, js, all)
	waitUntil(t, 60*time.Second, "some deliveries to a", func() bool { return rc.unique("/a") >= 300 })
	waitUntil(t, 10*time.Second, "one active replica for a", func() bool { return onlyActive(t, reps, "a") >= 0 })
	who := onlyActive(t, reps, "a")
	killed := time.Now()
	killHard(t, reps[who])
	before := len(rc.arrivals("/a"))
	if rc.unique("/a") == len(all) {
		t.Fatal("everything was delivered before the kill; the test proves nothing")
	}
	t.Logf("killed replica %d with %d of %d entries at a", who, rc.unique("/a"), len(all))

	waitUntil(t, 35*time.Second, "the survivor delivering a", func() bool { return len(rc.arrivals("/a")) > before })
	takeover := rc.arrivals("/a")[before].at.Sub(killed)
	t.Logf("takeover: first delivery to a by the survivor %v after the kill", takeover.Round(10*time.Millisecond))
	if takeover > 30*time.Second {
		t.Errorf("takeover took %v, want within 30s", takeover)
	}
	waitUntil(t, 90*time.Second, "every entry at a and n", func() bool {
		return rc.unique("/a") == len(all) && rc.unique("/n") == len(all)
	})
	t.Logf("all delivered %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	t.Logf("duplicates: a %d, n %d", rc.check(t, "/a"), rc.check(t, "/n"))
	rc.checkOrder(t, "/a")
	survivor := reps[1-who]
	waitUntil(t, 10*time.Second, "survivor active for a", func() bool {
		return gauge(t, survivor, `auditrelay_webhook_active{webhook="a"}`) == 1
	})
	// The server pins a client when it delivers an entry: a later entry
	// pins the survivor's intake too.
	publishAll(t, js, []string{`{"operation":"Creation","objectType":"case","objectId":"t3000","rootId":"r0"}`})
	waitUntil(t, 10*time.Second, "survivor's intake active", func() bool {
		_, b := readyz(t, survivor)
		return b.Intake == "active"
	})
}

// TestNATSNodeLostMidStream: with an R3 stream on three nodes and two
// sidecars, the node leading the ordered webhook's consumer is shut down
// mid-stream; delivery goes on through the other two and nothing is lost.
func TestNATSNodeLostMidStream(t *testing.T) {
	srvs := natstest.StartCluster(t, 3)
	rc := newOrderRecorder(t, 2*time.Millisecond)
	webhooks := fmt.Sprintf(`webhooks { a { url = "%[1]s/a", delivery.maxInFlight = 8 }, n { url = "%[1]s/n", delivery.orderBy = none, delivery.maxInFlight = 8 } }`, rc.URL)
	startReplicas(t, 2, natstest.ClusterURLs(srvs), webhooks)

	leader := consumerLeader(t, srvs, "auditrelay-a")
	_, js := natstest.Connect(t, srvs[(leader+1)%3])
	all := entries(3000)
	publishAll(t, js, all)
	waitUntil(t, 60*time.Second, "some deliveries to a", func() bool { return rc.unique("/a") >= 300 })
	srvs[leader].Shutdown()
	lost := time.Now()
	if rc.unique("/a") == len(all) {
		t.Fatal("everything was delivered before the node went; the test proves nothing")
	}
	t.Logf("shut down node %d (leader of auditrelay-a) with %d of %d entries at a", leader, rc.unique("/a"), len(all))
	waitUntil(t, 120*time.Second, "every entry at a and n", func() bool {
		return rc.unique("/a") == len(all) && rc.unique("/n") == len(all)
	})
	t.Logf("all delivered %v after the node went; duplicates: a %d, n %d",
		time.Since(lost).Round(100*time.Millisecond), rc.check(t, "/a"), rc.check(t, "/n"))
	t.Logf("entries of a out of order per rootId: %d", len(rc.outOfOrder("/a")))
}

// consumerLeader is the index of the server leading consumer name.
func consumerLeader(t *testing.T, srvs []*server.Server, name string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, s := range srvs {
			if s.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, "THEHIVE_AUDIT", name) {
				return i
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no leader for consumer %s", name)
	return -1
}

// waitSettled waits until each consumer has acknowledged all n entries and
// holds none: no redelivery can come any more.
func waitSettled(t *testing.T, js jetstream.JetStream, n int, consumers ...string) {
	t.Helper()
	for _, name := range consumers {
		waitUntil(t, 30*time.Second, name+" settled", func() bool {
			info := consumerInfo(js, name)
			return info != nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == uint64(n)
		})
	}
}

// consumerInfo is what the server says of an audit stream consumer now,
// nil when it cannot say.
func consumerInfo(js jetstream.JetStream, name string) *jetstream.ConsumerInfo {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := js.Consumer(ctx, "THEHIVE_AUDIT", name)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}
