package relay

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
)

// startSecuredNATS starts an in-process JetStream server with the given
// security options (TLS, nkey users, trusted operators).
func startSecuredNATS(t *testing.T, o server.Options) *server.Server {
	t.Helper()
	return natstest.StartWith(t, func(base *server.Options) {
		host, port, js, dir := base.Host, base.Port, base.JetStream, base.StoreDir
		*base = o
		base.Host, base.Port, base.JetStream, base.StoreDir, base.NoLog, base.NoSigs = host, port, js, dir, true, true
	})
}

// jsWith is a JetStream client of url with the given options.
func jsWith(t *testing.T, url string, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// natsAuthConfig is a sidecar config against url with the nats block's
// extra keys and one webhook to hook.
func natsAuthConfig(url, extra, hook string) string {
	return fmt.Sprintf(`
auditrelay {
  nats { url = %q, stream.maxAge = 1h, %s }
  admin.listen = "127.0.0.1:0"
  shutdownTimeout = 5s
}
webhooks.siem { url = "%s/siem" }
`, url, extra, hook)
}

// deliversThrough starts a sidecar with conf, waits until it is ready,
// publishes one entry with js and sees it delivered.
func deliversThrough(t *testing.T, conf string, js jetstream.JetStream) {
	t.Helper()
	rc := newReceiver(t, nil)
	startRelay(t, parseConfig(t, strings.ReplaceAll(conf, "HOOK", rc.URL)))
	e := entry("Creation", "case", "a", "a", 1)
	publish(t, js, "thehive.audit.case", e)
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(rc.delivered()) == 1 })
	if got := string(rc.delivered()[0]); got != e {
		t.Errorf("delivered %s, want %s", got, e)
	}
}

// refusedBy starts a sidecar with conf and waits until it logged a failed
// connection attempt naming want (any case); it must then be not ready for
// want of NATS.
func refusedBy(t *testing.T, conf, want string) {
	t.Helper()
	var logs syncBuffer
	s := startWith(t, parseConfig(t, strings.ReplaceAll(conf, "HOOK", "http://127.0.0.1:1")), Options{
		Version: "test", Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	defer func() {
		if t.Failed() {
			t.Logf("sidecar log:\n%s", logs.String())
		}
	}()
	waitFor(t, 15*time.Second, "the refusal logged", func() bool {
		for _, line := range strings.Split(strings.ToLower(logs.String()), "\n") {
			if strings.Contains(line, "nats connection attempt failed") && strings.Contains(line, strings.ToLower(want)) {
				return true
			}
		}
		return false
	})
	if why := strings.Join(s.NotReady(), "; "); !strings.Contains(why, "NATS not connected") {
		t.Errorf("refused by NATS, yet not ready only because %q", why)
	}
}

// TestNATSClientTLS (SPEC §2.4 nats.tls): against a server that requires
// TLS and verifies client certificates, the sidecar connects with the
// configured trust store and client key store and delivers; without the
// client certificate the server refuses it.
func TestNATSClientTLS(t *testing.T) {
	pair, err := tls.LoadX509KeyPair(tlsTestdata(t, "server.pem"), tlsTestdata(t, "server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(tlsTestdata(t, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.pem holds no certificate")
	}
	srv := startSecuredNATS(t, server.Options{
		TLS: true, TLSVerify: true, TLSTimeout: 5,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	trust := fmt.Sprintf(`trustManager.stores = [ { type = PEM, path = %q } ]`, tlsTestdata(t, "ca.pem"))
	withCert := natsAuthConfig(url, fmt.Sprintf(`tls { %s, keyManager.stores = [ %s ] }`, trust, storeHOCON(t, "PKCS12", "client.p12")), "HOOK")

	js := jsWith(t, url, nats.RootCAs(tlsTestdata(t, "ca.pem")),
		nats.ClientCert(tlsTestdata(t, "client.pem"), tlsTestdata(t, "client.pem")))
	t.Run("trust store and client certificate", func(t *testing.T) { deliversThrough(t, withCert, js) })
	t.Run("no client certificate", func(t *testing.T) {
		// With TLS 1.3 the client learns of the refusal after its handshake:
		// "remote error: tls: certificate required", or "tls error:
		// connection closed by remote after TLS handshake".
		refusedBy(t, natsAuthConfig(url, fmt.Sprintf(`tls { %s }`, trust), "HOOK"), "tls")
	})
}

// TestNATSNkeyFile (SPEC §2.4 nats.auth.nkeyFile): a server that knows the
// sidecar only by its nkey lets it in with the seed file, and refuses
// another seed.
func TestNATSNkeyFile(t *testing.T) {
	user, seedFile := newNkeyUser(t)
	_, otherSeed := newNkeyUser(t)
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	srv := startSecuredNATS(t, server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		t.Fatal(err)
	}
	js := jsWith(t, srv.ClientURL(), opt)
	t.Run("the user's seed", func(t *testing.T) {
		deliversThrough(t, natsAuthConfig(srv.ClientURL(), fmt.Sprintf(`auth.nkeyFile = %q`, seedFile), "HOOK"), js)
	})
	t.Run("another seed", func(t *testing.T) {
		refusedBy(t, natsAuthConfig(srv.ClientURL(), fmt.Sprintf(`auth.nkeyFile = %q`, otherSeed), "HOOK"), "authorization violation")
	})
}

// newNkeyUser makes a user nkey and writes its seed to a file.
func newNkeyUser(t *testing.T) (nkeys.KeyPair, string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "auditrelay.nk")
	if err := os.WriteFile(p, append(seed, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	return kp, p
}

// TestNATSCredsFile (SPEC §2.4 nats.auth.credsFile): a server in operator
// mode (operator, account with JetStream, user JWTs) lets the sidecar in
// with a creds file, and refuses a user the account did not sign.
func TestNATSCredsFile(t *testing.T) {
	operator := mustKP(t, nkeys.CreateOperator)
	account, system := mustKP(t, nkeys.CreateAccount), mustKP(t, nkeys.CreateAccount)
	opPub, acPub, sysPub := mustPub(t, operator), mustPub(t, account), mustPub(t, system)

	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "auditrelay-test-operator"
	oc.SystemAccount = sysPub // JetStream needs one
	opJWT, err := oc.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	opClaims, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	ac := jwt.NewAccountClaims(acPub)
	ac.Name = "SOC"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	acJWT, err := ac.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(operator)
	if err != nil {
		t.Fatal(err)
	}
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]string{acPub: acJWT, sysPub: sysJWT} {
		if err := resolver.Store(pub, claims); err != nil {
			t.Fatal(err)
		}
	}
	srv := startSecuredNATS(t, server.Options{TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver, SystemAccount: sysPub})

	creds := userCreds(t, account, acPub)
	js := jsWith(t, srv.ClientURL(), nats.UserCredentials(creds))
	t.Run("the account's user", func(t *testing.T) {
		deliversThrough(t, natsAuthConfig(srv.ClientURL(), fmt.Sprintf(`auth.credsFile = %q`, creds), "HOOK"), js)
	})
	t.Run("a user of an unknown account", func(t *testing.T) {
		stranger := mustKP(t, nkeys.CreateAccount)
		bad := userCreds(t, stranger, mustPub(t, stranger))
		refusedBy(t, natsAuthConfig(srv.ClientURL(), fmt.Sprintf(`auth.credsFile = %q`, bad), "HOOK"), "authorization violation")
	})
}

// userCreds makes a user signed by account and writes its creds file.
func userCreds(t *testing.T, account nkeys.KeyPair, acPub string) string {
	t.Helper()
	user := mustKP(t, nkeys.CreateUser)
	uc := jwt.NewUserClaims(mustPub(t, user))
	uc.Name = "auditrelay"
	uc.IssuerAccount = acPub
	userJWT, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	text, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "auditrelay.creds")
	if err := os.WriteFile(p, text, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustKP(t *testing.T, create func() (nkeys.KeyPair, error)) nkeys.KeyPair {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func mustPub(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
