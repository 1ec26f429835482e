package ingest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/ingest"
	"github.com/auditrelay/auditrelay/internal/natstest"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// The TLS material comes from testdata/gen.sh (openssl and keytool).
func store(t testing.TB, typ, file, keyPath string) config.Store {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return config.Store{Type: typ, Path: p, Password: "changeit", HasPassword: true, KeyPath: keyPath}
}

func mutualTLS(t testing.TB) config.Ingest {
	cfg := ingestConfig()
	cfg.TLS.KeyManager.Stores = []config.Store{store(t, "PKCS12", "server.p12", "auditrelay.ingest.tls.keyManager.stores[0]")}
	cfg.TLS.TrustManager.Stores = []config.Store{store(t, "JKS", "truststore.jks", "auditrelay.ingest.tls.trustManager.stores[0]")}
	return cfg
}

func clientTLS(t testing.TB, cert, key string) *tls.Config {
	t.Helper()
	ca, err := os.ReadFile("testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	c := &tls.Config{RootCAs: roots}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(filepath.Join("testdata", cert), filepath.Join("testdata", key))
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	return c
}

// TestMutualTLS: with a trust store, the listener serves HTTPS from its
// PKCS12 key store and takes a POST only from a client whose certificate
// the JKS trust store's CA signed (how TheHive 3, which cannot send auth
// headers, authenticates with ws.ssl.keyManager).
func TestMutualTLS(t *testing.T) {
	e := newEnv(t, natstest.Start(t))
	s := e.start(t, mutualTLS(t))
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s, want https", s.URL())
	}
	body := []byte(theHive3Bodies(t)[0])
	r := post(t, tlsClient(t, clientTLS(t, "client.pem", "client.key")), http.MethodPost, s.URL(), body, playWS())
	if r.code != http.StatusOK || r.body["message"] != "stored" {
		t.Fatalf("trusted client certificate: %d %s", r.code, r.raw)
	}
	for name, c := range map[string]*tls.Config{
		"no client certificate":     clientTLS(t, "", ""),
		"certificate of another CA": clientTLS(t, "other-client.pem", "other-client.key"),
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(string(body)))
		resp, err := tlsClient(t, c).Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: got %d, want the handshake refused", name, resp.StatusCode)
		}
	}
	if n := e.count(t, streamName, "thehive.audit.>"); n != 1 {
		t.Errorf("stream holds %d entries, want 1", n)
	}
}

// TestTLSStoreProblems: a store that cannot be used is a start-up error
// naming its key path and file.
func TestTLSStoreProblems(t *testing.T) {
	cfg := mutualTLS(t)
	cfg.TLS.KeyManager.Stores[0].Password = "wrong"
	_, err := ingest.TLSConfig(cfg, time.Now())
	if !errors.Is(err, tlsconf.ErrWrongPassword) || !strings.Contains(err.Error(), "auditrelay.ingest.tls.keyManager.stores[0]") ||
		!strings.Contains(err.Error(), "server.p12") {
		t.Errorf("wrong key store password: %v", err)
	}
	cfg = mutualTLS(t)
	cfg.TLS.TrustManager.Stores[0] = store(t, "PEM", "client.key", "auditrelay.ingest.tls.trustManager.stores[0]")
	if _, err := ingest.TLSConfig(cfg, time.Now()); err == nil || !strings.Contains(err.Error(), "auditrelay.ingest.tls.trustManager.stores[0]") {
		t.Errorf("trust store without a certificate: %v", err)
	}
	e := newEnv(t, natstest.Start(t))
	if _, err := ingest.New(cfg, ingest.Options{Store: e.src}); err == nil {
		t.Error("New with an unusable trust store succeeded")
	}
}
