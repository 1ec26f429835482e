// Package natstest starts real, in-process NATS servers with JetStream for
// the tests of audit, relay and cmd/auditrelay. It is test support only.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start starts a server on a random loopback port with JetStream stored in
// a fresh temporary directory; it is shut down when the test ends.
func Start(t testing.TB) *server.Server {
	t.Helper()
	return StartAt(t, -1, t.TempDir())
}

// StartAt starts a server on port (-1: random) with JetStream in dir, so a
// test can stop a server and start it again on the same port and store.
func StartAt(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	return StartAtWith(t, port, dir, nil)
}

// StartWith is Start with the server options changed by set (a small
// MaxPayload, say) before the server starts.
func StartWith(t testing.TB, set func(*server.Options)) *server.Server {
	t.Helper()
	return StartAtWith(t, -1, t.TempDir(), set)
}

// StartAtWith is StartAt with the server options changed by set (nil: none),
// so a restarted server keeps the options of the first. A port that is
// still held (a restart right after a shutdown) is waited for.
func StartAtWith(t testing.TB, port int, dir string, set func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	}
	if set != nil {
		set(opts)
	}
	if port > 0 {
		waitPortFree(t, port)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server did not start")
	}
	return srv
}

// waitPortFree waits until port can be bound: a server just shut down may
// hold it a moment longer.
func waitPortFree(t testing.TB, port int) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for range 100 {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("port %d still in use after 5s", port)
}

// Port is the client port srv listens on: a test starts a server on a
// random port, then stops it and starts it again there.
func Port(srv *server.Server) int { return srv.Addr().(*net.TCPAddr).Port }

// Connect connects a client to srv, closed when the test ends.
func Connect(t testing.TB, srv *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// LastMsg is the last message on subject in stream, nil when there is
// none (or no such stream).
func LastMsg(t testing.TB, js jetstream.JetStream, stream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil
	}
	msg, err := st.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		return nil
	}
	return msg
}

// StartCluster starts n servers clustered over loopback routes, each with
// JetStream in its own temporary directory, and waits until JetStream has
// a meta leader. Servers are shut down when the test ends (a test may shut
// one down earlier).
func StartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(p))}
	}
	srvs := make([]*server.Server, n)
	for i := range srvs {
		srvs[i] = startNode(t, i, ports[i], routes)
	}
	waitMetaLeader(t, srvs)
	return srvs
}

func startNode(t testing.TB, i, clusterPort int, routes []*url.URL) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		ServerName: fmt.Sprintf("n%d", i), Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "auditrelay-test", Host: "127.0.0.1", Port: clusterPort},
		Routes:  routes,
	})
	if err != nil {
		t.Fatalf("nats server %d: %v", i, err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server %d did not start", i)
	}
	return srv
}

// waitMetaLeader waits until every server sees the whole cluster and
// JetStream has elected a meta leader, so streams can be created.
func waitMetaLeader(t testing.TB, srvs []*server.Server) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		ready := true
		for _, s := range srvs {
			if s.NumRoutes() < len(srvs)-1 || !s.JetStreamIsClustered() {
				ready = false
			}
		}
		for _, s := range srvs {
			if ready && s.JetStreamIsLeader() {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("NATS cluster formed no JetStream meta leader within 20s")
}

// ClusterURLs are the client URLs of srvs, for a client's server list.
func ClusterURLs(srvs []*server.Server) []string {
	out := make([]string, len(srvs))
	for i, s := range srvs {
		out[i] = s.ClientURL()
	}
	return out
}

// FreePort is a loopback port nothing listens on (for now): for an address
// that must refuse connections, or be known before its server starts (a
// cluster's routes). A server that can start first should: Start, then
// Port.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
