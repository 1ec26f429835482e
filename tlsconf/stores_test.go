package tlsconf

import (
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/tlstest"
)

// The fixtures are this package's testdata, read through tlstest as the
// other packages' tests read them.

func testdata(t *testing.T, name string) string { return tlstest.Path(t, name) }

// fileStore is a trust store of testdata with the test password.
func fileStore(t *testing.T, typ, name string) config.Store { return tlstest.Trust(t, typ, name) }

func noPassword(s config.Store) config.Store {
	s.Password, s.HasPassword = "", false
	return s
}

func withPassword(s config.Store, pw string) config.Store { return tlstest.WithPassword(s, pw) }

func readPEM(t *testing.T, name string) []byte { return tlstest.Read(t, name) }

// serverLeaf is the leaf of testdata/server.pem, which the test CA signed.
func serverLeaf(t *testing.T) *x509.Certificate {
	t.Helper()
	certs, err := pemCerts(readPEM(t, "server.pem"))
	if err != nil || len(certs) != 2 {
		t.Fatalf("server.pem: %v, %d certificates", err, len(certs))
	}
	return certs[0]
}

func TestLoadTrust(t *testing.T) {
	inline := config.Store{Type: "pem", Data: string(readPEM(t, "ca.pem")), KeyPath: "x"}
	tests := []struct {
		name   string
		stores []config.Store
		want   int // certificates
	}{
		{"PEM file", []config.Store{fileStore(t, "PEM", "ca.pem")}, 1},
		{"PEM inline data", []config.Store{inline}, 1},
		{"JKS trusted certificate entry", []config.Store{fileStore(t, "JKS", "truststore.jks")}, 1},
		{"JKS made by keytool", []config.Store{fileStore(t, "jks", "truststore-keytool.jks")}, 1},
		{"JKS private key entry chain", []config.Store{fileStore(t, "JKS", "client.jks")}, 2},
		{"PKCS12 truststore", []config.Store{fileStore(t, "PKCS12", "truststore.p12")}, 1},
		{"PKCS12 truststore made by keytool", []config.Store{fileStore(t, "pkcs12", "truststore-keytool.p12")}, 1},
		{"PKCS12 plain bundle", []config.Store{fileStore(t, "PKCS12", "bundle.p12")}, 2},
		{"JKS without password: no integrity check", []config.Store{noPassword(fileStore(t, "JKS", "truststore.jks"))}, 1},
		{"keytool JKS without password", []config.Store{noPassword(fileStore(t, "JKS", "truststore-keytool.jks"))}, 1},
		{"PKCS12 without MAC or encryption, no password", []config.Store{noPassword(fileStore(t, "PKCS12", "truststore-nopass.p12"))}, 1},
		{"keytool PKCS12 with MAC, plain certs, no password", []config.Store{noPassword(fileStore(t, "PKCS12", "truststore-keytool-plaincerts.p12"))}, 1},
		{"JKS typed store holding PKCS12 (keystore.type.compat)", []config.Store{fileStore(t, "JKS", "truststore.p12")}, 1},
		{"several stores combine", []config.Store{fileStore(t, "PEM", "wrong-ca.pem"), fileStore(t, "JKS", "truststore.jks")}, 2},
	}
	leaf := serverLeaf(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, certs, err := LoadTrust(tt.stores)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(certs); got != tt.want {
				t.Errorf("got %d certificates, want %d", got, tt.want)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "localhost"}); err != nil {
				t.Errorf("server certificate not trusted by the pool: %v", err)
			}
		})
	}
}

func TestLoadTrustWrongCA(t *testing.T) {
	leaf := serverLeaf(t)
	for _, s := range []config.Store{fileStore(t, "PEM", "wrong-ca.pem"), fileStore(t, "JKS", "wrong-ca.jks"), fileStore(t, "PKCS12", "wrong-ca.p12")} {
		pool, _, err := LoadTrust([]config.Store{s})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err == nil {
			t.Errorf("%s: the unrelated CA verified the server certificate", s.Path)
		}
	}
}

func TestLoadTrustErrors(t *testing.T) {
	kp := "webhooks.siem.ws.ssl.trustManager.stores[0]"
	missing := fileStore(t, "JKS", "missing.jks")
	tests := []struct {
		name  string
		store config.Store
		want  string
		is    error
	}{
		{"JKS wrong password", withPassword(fileStore(t, "JKS", "truststore.jks"), "nope"),
			kp + " (" + testdata(t, "truststore.jks") + "): wrong password", ErrWrongPassword},
		{"PKCS12 wrong password", withPassword(fileStore(t, "PKCS12", "truststore.p12"), "nope"),
			kp + " (" + testdata(t, "truststore.p12") + "): wrong password", ErrWrongPassword},
		{"keytool PKCS12 wrong password", withPassword(fileStore(t, "PKCS12", "truststore-keytool.p12"), "nope"),
			kp + " (" + testdata(t, "truststore-keytool.p12") + "): wrong password", ErrWrongPassword},
		{"no certificate", fileStore(t, "JKS", "empty.jks"),
			kp + " (" + testdata(t, "empty.jks") + "): no certificate in store", ErrNoCertificate},
		{"PEM without certificate", config.Store{Type: "PEM", Data: "hello", KeyPath: kp},
			kp + " (inline data): no certificate in store", ErrNoCertificate},
		{"missing file", missing,
			kp + " (" + missing.Path + "): open " + missing.Path + ": no such file or directory", os.ErrNotExist},
		{"encrypted PKCS12 without password", noPassword(fileStore(t, "PKCS12", "truststore-keytool.p12")),
			kp + " (" + testdata(t, "truststore-keytool.p12") + "): certificates are encrypted and the store has no password", ErrEncryptedWithoutPasswd},
		{"unknown type", config.Store{Type: "JCEKS", Path: "/x.jceks", KeyPath: kp},
			kp + ` (/x.jceks): unknown store type "JCEKS" (want JKS, PKCS12 or PEM)`, nil},
		{"inline data must be PEM", config.Store{Type: "JKS", Data: "x", KeyPath: kp},
			kp + " (inline data): inline data is PEM text, not JKS", nil},
		{"not a store", fileStore(t, "JKS", "ca.pem"),
			kp + " (" + testdata(t, "ca.pem") + "): not a JKS or PKCS12 store", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := LoadTrust([]config.Store{tt.store})
			if err == nil {
				t.Fatal("no error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			var se *StoreError
			if !errors.As(err, &se) || se.KeyPath != kp {
				t.Errorf("not a *StoreError for %s: %#v", kp, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v) false", tt.is)
			}
		})
	}
}

func TestLoadTrustReportsEveryStore(t *testing.T) {
	bad1 := withPassword(fileStore(t, "JKS", "truststore.jks"), "nope")
	bad2 := fileStore(t, "JKS", "empty.jks")
	bad2.KeyPath = "webhooks.siem.ws.ssl.trustManager.stores[2]"
	_, _, err := LoadTrust([]config.Store{bad1, fileStore(t, "PEM", "ca.pem"), bad2})
	if err == nil || !strings.Contains(err.Error(), "stores[0]") || !strings.Contains(err.Error(), "stores[2]") {
		t.Fatalf("got %v, want both stores[0] and stores[2]", err)
	}
}

func keyStore(t *testing.T, typ, name string) config.Store { return tlstest.Keys(t, typ, name) }

func TestLoadKeyPair(t *testing.T) {
	tests := []struct {
		name  string
		store config.Store
	}{
		{"PKCS12", keyStore(t, "PKCS12", "client.p12")},
		{"PKCS12 legacy bundle", keyStore(t, "PKCS12", "bundle.p12")},
		{"JKS private key entry", keyStore(t, "JKS", "client.jks")},
		{"JKS made by keytool", keyStore(t, "JKS", "client-keytool.jks")},
		{"PEM chain and key", keyStore(t, "PEM", "client.pem")},
		{"PEM inline", config.Store{Type: "PEM", Data: string(readPEM(t, "client.pem")), KeyPath: "k"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair, err := LoadKeyPair([]config.Store{tt.store}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			if got, want := pair.Leaf.Subject.CommonName, "auditrelay test client"; got != want {
				t.Errorf("leaf %q, want %q", got, want)
			}
			if got := len(pair.Certificate); got != 2 {
				t.Errorf("chain of %d certificates, want 2 (client, CA)", got)
			}
		})
	}
}

func TestLoadKeyPairErrors(t *testing.T) {
	expired := keyStore(t, "PKCS12", "expired-client.p12")
	early := keyStore(t, "PKCS12", "client.p12")
	kp := "webhooks.siem.ws.ssl.keyManager.stores[0]"
	tests := []struct {
		name  string
		store config.Store
		now   time.Time
		want  string
	}{
		{"expired", expired, time.Now(), kp + " (" + expired.Path + "): client certificate expired on 2025-01-01"},
		{"not yet valid", early, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), kp + " (" + early.Path + "): client certificate not valid before "},
		{"truststore has no key", keyStore(t, "JKS", "truststore.jks"), time.Now(), kp + " (" + testdata(t, "truststore.jks") + "): no private key in store"},
		{"PEM without key", keyStore(t, "PEM", "ca.pem"), time.Now(), kp + " (" + testdata(t, "ca.pem") + "): no private key in store"},
		{"JKS wrong password", withPassword(keyStore(t, "JKS", "client.jks"), "nope"), time.Now(), kp + " (" + testdata(t, "client.jks") + "): wrong password"},
		{"PKCS12 wrong password", withPassword(keyStore(t, "PKCS12", "client.p12"), "nope"), time.Now(), kp + " (" + testdata(t, "client.p12") + "): wrong password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadKeyPair([]config.Store{tt.store}, tt.now)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("got  %v\nwant %s…", err, tt.want)
			}
		})
	}
}
