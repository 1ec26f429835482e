//go:build ignore

// gen writes the TLS material of the tests (tlsconf/testdata). Run from tlsconf/:
//
//	go run testdata/gen.go
//
// Certificates are valid for 100 years (except expired-client), so the
// committed files do not expire. JKS files are written with keystore-go and
// PKCS12 files with go-pkcs12, as keytool would write them; the keytool-made
// stores are listed in testdata/README.txt with their commands.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

const (
	dir      = "testdata"
	password = "changeit"
)

var (
	now      = time.Now().Add(-time.Hour)
	longLife = now.AddDate(100, 0, 0)
	serial   = int64(1)
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func main() {
	ca := newCA("auditrelay test CA")
	wrongCA := newCA("auditrelay unrelated CA")
	server := issue(ca, "auditrelay test server", x509.ExtKeyUsageServerAuth, longLife,
		"localhost", "siem.test", "127.0.0.1", "::1")
	wrongHost := issue(ca, "wrong host server", x509.ExtKeyUsageServerAuth, longLife, "wrong.example")
	client := issue(ca, "auditrelay test client", x509.ExtKeyUsageClientAuth, longLife)
	expired := issue(ca, "expired client", x509.ExtKeyUsageClientAuth,
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	wrongClient := issue(wrongCA, "client of the unrelated CA", x509.ExtKeyUsageClientAuth, longLife)

	writePEM("ca.pem", certPEM(ca.cert))
	writePEM("wrong-ca.pem", certPEM(wrongCA.cert))
	writePEM("server.pem", append(certPEM(server.cert), certPEM(ca.cert)...))
	writePEM("server-key.pem", keyPEM(server.key))
	writePEM("wronghost-server.pem", append(certPEM(wrongHost.cert), certPEM(ca.cert)...))
	writePEM("wronghost-server-key.pem", keyPEM(wrongHost.key))
	writePEM("client.pem", join(certPEM(client.cert), certPEM(ca.cert), keyPEM(client.key)))

	writeFile("truststore.jks", trustJKS(ca.cert))
	writeFile("wrong-ca.jks", trustJKS(wrongCA.cert))
	writeFile("empty.jks", emptyJKS())
	writeFile("truststore.p12", must(pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{ca.cert}, password)))
	writeFile("truststore-nopass.p12", must(pkcs12.Passwordless.EncodeTrustStore([]*x509.Certificate{ca.cert}, "")))
	writeFile("wrong-ca.p12", must(pkcs12.Modern.EncodeTrustStore([]*x509.Certificate{wrongCA.cert}, password)))
	writeFile("bundle.p12", must(pkcs12.LegacyRC2.Encode(client.key, client.cert, []*x509.Certificate{ca.cert}, password)))
	writeFile("client.p12", must(pkcs12.Modern.Encode(client.key, client.cert, []*x509.Certificate{ca.cert}, password)))
	writeFile("client.jks", keyJKS(client, ca.cert))
	writeFile("expired-client.p12", must(pkcs12.Modern.Encode(expired.key, expired.cert, []*x509.Certificate{ca.cert}, password)))
	writeFile("wrong-ca-client.p12", must(pkcs12.Modern.Encode(wrongClient.key, wrongClient.cert, nil, password)))
}

func newCA(name string) pair {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := template(name, longLife)
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	der := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key))
	return pair{cert: must(x509.ParseCertificate(der)), key: key}
}

func issue(ca pair, name string, usage x509.ExtKeyUsage, notAfter time.Time, hosts ...string) pair {
	key := must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	tmpl := template(name, notAfter)
	if notAfter.Before(now) {
		tmpl.NotBefore = notAfter.AddDate(-1, 0, 0)
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der := must(x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), crypto.Signer(ca.key)))
	return pair{cert: must(x509.ParseCertificate(der)), key: key}
}

func template(name string, notAfter time.Time) *x509.Certificate {
	serial++
	return &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"auditrelay tests"}},
		NotBefore:    now,
		NotAfter:     notAfter,
	}
}

func trustJKS(cert *x509.Certificate) []byte {
	ks := keystore.New()
	entry := keystore.TrustedCertificateEntry{
		CreationTime: now,
		Certificate:  keystore.Certificate{Type: "X.509", Content: cert.Raw},
	}
	check(ks.SetTrustedCertificateEntry("ca", entry))
	return store(ks)
}

func emptyJKS() []byte { return store(keystore.New()) }

func keyJKS(p pair, ca *x509.Certificate) []byte {
	ks := keystore.New()
	entry := keystore.PrivateKeyEntry{
		CreationTime: now,
		PrivateKey:   must(x509.MarshalPKCS8PrivateKey(p.key)),
		CertificateChain: []keystore.Certificate{
			{Type: "X.509", Content: p.cert.Raw},
			{Type: "X.509", Content: ca.Raw},
		},
	}
	// TheHive (Play WS) uses the store password as the key password.
	check(ks.SetPrivateKeyEntry("client", entry, []byte(password)))
	return store(ks)
}

func store(ks keystore.KeyStore) []byte {
	var buf bytes.Buffer
	check(ks.Store(&buf, []byte(password)))
	return buf.Bytes()
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *ecdsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(k))})
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func writePEM(name string, data []byte) { writeFile(name, data) }

func writeFile(name string, data []byte) {
	check(os.WriteFile(filepath.Join(dir, name), data, 0o644))
}

func must[T any](v T, err error) T {
	check(err)
	return v
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
