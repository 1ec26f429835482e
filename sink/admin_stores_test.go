package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/tlstest"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// The files of testdata/admin were made with openssl and keytool (see
// testdata/admin/gen.sh): RSA keys, PKCS#1 and SEC1 PEM keys, and a chain
// through an intermediate CA, as an admin's own PKI gives them.

func adminFile(t *testing.T, name string) string {
	return tlstest.Path(t, filepath.Join("admin", name))
}

func adminStore(t *testing.T, typ, name, keyPath string) config.Store {
	return config.Store{Type: typ, Path: adminFile(t, name), Password: storePassword, HasPassword: true, KeyPath: keyPath}
}

func adminTrust(t *testing.T, typ, name string) config.Store {
	return adminStore(t, typ, name, "webhooks.siem.ws.ssl.trustManager.stores[0]")
}

func adminKeys(t *testing.T, typ, name string) config.Store {
	return adminStore(t, typ, name, "webhooks.siem.ws.ssl.keyManager.stores[0]")
}

// adminRootPool is a pool of the admin root CA alone.
func adminRootPool(t *testing.T) *x509.CertPool {
	t.Helper()
	pool, _, err := tlsconf.LoadTrust([]config.Store{adminTrust(t, "PEM", "root.pem")})
	if err != nil {
		t.Fatal(err)
	}
	return pool
}

// startAdminServer is an HTTPS endpoint with the RSA server certificate
// (its PKCS#1 key) serving certFile: the leaf with its intermediate, or the
// leaf alone. With clientCAs it requires a client certificate that chains
// to them. It answers the client certificate's CN, or "-".
func startAdminServer(t *testing.T, certFile string, clientCAs *x509.CertPool) *httptest.Server {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(adminFile(t, certFile), adminFile(t, "server-key-pkcs1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "-"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		io.WriteString(w, cn)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	if clientCAs != nil {
		srv.TLS.ClientAuth, srv.TLS.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestTrustRootOnlyThroughIntermediate: a trust store holding only the root
// (PEM, or JKS by keytool) verifies an endpoint that serves its leaf with
// the intermediate; the same endpoint serving the leaf alone fails, so the
// intermediate is what the chain is built through.
func TestTrustRootOnlyThroughIntermediate(t *testing.T) {
	chain := startAdminServer(t, "server-chain.pem", nil)
	leafOnly := startAdminServer(t, "server-leaf.pem", nil)
	for _, store := range []config.Store{adminTrust(t, "PEM", "root.pem"), adminTrust(t, "JKS", "root.jks")} {
		t.Run(store.Type, func(t *testing.T) {
			pool, n, err := tlsconf.LoadTrust([]config.Store{store})
			if err != nil || len(n) != 1 || pool == nil {
				t.Fatalf("LoadTrust: %d certificates, %v; want the root alone", len(n), err)
			}
			wh := testWebhook(chain.URL)
			wh.WS.SSL.TrustManager.Stores = []config.Store{store}
			if body, _, err := get(t, wh); err != nil || body != "-" {
				t.Fatalf("leaf + intermediate, root-only trust store: %q, %v", body, err)
			}
			wh = testWebhook(leafOnly.URL)
			wh.WS.SSL.TrustManager.Stores = []config.Store{store}
			_, _, err = get(t, wh)
			var unknown x509.UnknownAuthorityError
			if err == nil || !errors.As(err, &unknown) {
				t.Fatalf("leaf without its intermediate: %v, want an unknown authority error", err)
			}
		})
	}
}

// TestClientKeyStoresAsAdminsMakeThem: mutual TLS with client key stores an
// admin makes: RSA keys in PKCS#1 and PKCS#8 PEM, an ECDSA P-384 key in
// SEC1 PEM, an RSA PKCS12 by openssl and a JKS by keytool from it. Each
// sends its leaf and the intermediate; the endpoint trusts only the root.
func TestClientKeyStoresAsAdminsMakeThem(t *testing.T) {
	srv := startAdminServer(t, "server-chain.pem", adminRootPool(t))
	tests := []struct {
		name  string
		store config.Store
		cn    string
	}{
		{"PEM RSA PKCS#1 key", adminKeys(t, "PEM", "client-rsa-pkcs1.pem"), "auditrelay admin RSA client"},
		{"PEM RSA PKCS#8 key", adminKeys(t, "PEM", "client-rsa-pkcs8.pem"), "auditrelay admin RSA client"},
		{"PEM EC SEC1 key", adminKeys(t, "PEM", "client-ec-sec1.pem"), "auditrelay admin EC client"},
		{"PKCS12 by openssl, RSA", adminKeys(t, "PKCS12", "client-rsa.p12"), "auditrelay admin RSA client"},
		{"JKS by keytool, RSA", adminKeys(t, "JKS", "client-rsa.jks"), "auditrelay admin RSA client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := tlsconf.LoadKeyPair([]config.Store{tt.store}, time.Now())
			if err != nil {
				t.Fatalf("LoadKeyPair: %v", err)
			}
			if len(pair.Certificate) != 2 {
				t.Errorf("chain of %d certificates, want 2 (leaf, intermediate)", len(pair.Certificate))
			}
			wh := testWebhook(srv.URL)
			wh.WS.SSL.TrustManager.Stores = []config.Store{adminTrust(t, "PEM", "root.pem")}
			wh.WS.SSL.KeyManager.Stores = []config.Store{tt.store}
			body, _, err := get(t, wh)
			if err != nil {
				t.Fatal(err)
			}
			if body != tt.cn {
				t.Errorf("the endpoint saw client certificate %q, want %q", body, tt.cn)
			}
		})
	}
	t.Run("no client certificate", func(t *testing.T) {
		wh := testWebhook(srv.URL)
		wh.WS.SSL.TrustManager.Stores = []config.Store{adminTrust(t, "PEM", "root.pem")}
		if body, _, err := get(t, wh); err == nil {
			t.Fatalf("the endpoint requires a client certificate, yet answered %q", body)
		}
	})
}
