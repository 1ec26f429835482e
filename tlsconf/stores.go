package tlsconf

import (
	"bytes"
	"crypto"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	keystore "github.com/pavlo-v-chernykh/keystore-go/v4"
	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/auditrelay/auditrelay/config"
)

// Causes of a StoreError, for errors.Is.
var (
	ErrWrongPassword          = errors.New("wrong password")
	ErrNoCertificate          = errors.New("no certificate in store")
	ErrNoPrivateKey           = errors.New("no private key in store")
	ErrClientCertExpired      = errors.New("client certificate expired")
	ErrClientCertNotYetValid  = errors.New("client certificate not valid before")
	ErrEncryptedWithoutPasswd = errors.New("certificates are encrypted and the store has no password")
)

// StoreError is a trust or key store that cannot be used. It names the
// store's key path and its file ("inline data" for `data`), so `check` and
// `run` report it as: `webhooks.siem.ws.ssl.trustManager.stores[0]
// (/etc/thehive/truststore.jks): wrong password`.
type StoreError struct {
	KeyPath string
	File    string
	Err     error
}

// Error returns "<key path> (<file>): <cause>".
func (e *StoreError) Error() string { return fmt.Sprintf("%s (%s): %v", e.KeyPath, e.File, e.Err) }

// Unwrap returns the cause.
func (e *StoreError) Unwrap() error { return e.Err }

func storeErr(s config.Store, err error) error {
	file := s.Path
	if file == "" {
		file = "inline data"
	}
	return &StoreError{KeyPath: s.KeyPath, File: file, Err: err}
}

// LoadTrust reads trust stores (JKS, PKCS12, PEM) into one pool; the
// certificates are also returned, in store order, for logs and tests. From a
// JKS it takes trusted certificate entries and the chains of private key
// entries; from a PKCS12 a Java truststore or a plain bundle's chain. A store
// without password is read without an integrity check, as Java does. Every
// unusable store is reported, joined; a store yielding no certificate is one.
func LoadTrust(stores []config.Store) (*x509.CertPool, []*x509.Certificate, error) {
	pool := x509.NewCertPool()
	var all []*x509.Certificate
	var errs []error
	for _, s := range stores {
		certs, err := trustCerts(s)
		if err != nil {
			errs = append(errs, storeErr(s, err))
			continue
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
		all = append(all, certs...)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return pool, all, nil
}

func trustCerts(s config.Store) ([]*x509.Certificate, error) {
	raw, format, err := readStore(s)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	switch format {
	case "PEM":
		certs, err = pemCerts(raw)
	case "JKS":
		certs, err = jksCerts(raw, s)
	case "PKCS12":
		certs, err = p12Certs(raw, s)
	}
	if err == nil && len(certs) == 0 {
		err = ErrNoCertificate
	}
	return certs, err
}

// readStore returns the store's bytes and the format to read them as. Like
// Java 9+ (keystore.type.compat), a JKS store holding PKCS12 and a PKCS12
// store holding JKS are read as what they hold.
func readStore(s config.Store) ([]byte, string, error) {
	format := strings.ToUpper(s.Type)
	if format != "PEM" && format != "JKS" && format != "PKCS12" {
		return nil, "", fmt.Errorf("unknown store type %q (want JKS, PKCS12 or PEM)", s.Type)
	}
	if s.Path == "" {
		if format != "PEM" {
			return nil, "", fmt.Errorf("inline data is PEM text, not %s", format)
		}
		return []byte(s.Data), format, nil
	}
	raw, err := os.ReadFile(s.Path)
	if err != nil {
		return nil, "", err
	}
	if format != "PEM" {
		format = sniff(raw, format)
	}
	return raw, format, nil
}

const (
	jksMagic   = 0xfeedfeed
	jceksMagic = 0xcececece
)

func sniff(raw []byte, declared string) string {
	switch {
	case len(raw) >= 4 && binary.BigEndian.Uint32(raw) == jksMagic:
		return "JKS"
	case len(raw) > 0 && raw[0] == 0x30: // DER SEQUENCE: PKCS12
		return "PKCS12"
	}
	return declared
}

func pemCerts(raw []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("bad certificate in PEM: %w", err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// loadJKS checks the store's digest itself, so a wrong password is told
// from a damaged file. Without a password, Java reads a JKS without checking
// its digest; keystore-go always checks it, so the digest is recomputed over
// the content with the empty password first: the integrity check is skipped,
// the entries are read as they are (trusted certificates are not encrypted).
func loadJKS(raw []byte, s config.Store) (keystore.KeyStore, error) {
	ks := keystore.New(keystore.WithOrderedAliases(), keystore.WithCaseExactAliases())
	if len(raw) < 12+sha1.Size || binary.BigEndian.Uint32(raw) != jksMagic {
		if len(raw) >= 4 && binary.BigEndian.Uint32(raw) == jceksMagic {
			return ks, errors.New("JCEKS stores are not supported: convert with keytool -importkeystore -deststoretype PKCS12")
		}
		return ks, errors.New("not a JKS or PKCS12 store")
	}
	body := raw[:len(raw)-sha1.Size]
	password := []byte(s.Password)
	if !s.HasPassword {
		password = nil
		raw = append(bytes.Clone(body), jksDigest(nil, body)...)
	} else if !bytes.Equal(jksDigest(password, body), raw[len(body):]) {
		return ks, ErrWrongPassword
	}
	if err := ks.Load(bytes.NewReader(raw), password); err != nil {
		return ks, fmt.Errorf("damaged JKS store: %w", err)
	}
	return ks, nil
}

// jksDigest is JKS's integrity digest: SHA-1 over the password as UTF-16BE,
// "Mighty Aphrodite" and the content (the encoding keystore-go uses).
func jksDigest(password, body []byte) []byte {
	h := sha1.New()
	for _, b := range password {
		h.Write([]byte{0, b})
	}
	h.Write([]byte("Mighty Aphrodite"))
	h.Write(body)
	return h.Sum(nil)
}

func jksCerts(raw []byte, s config.Store) ([]*x509.Certificate, error) {
	ks, err := loadJKS(raw, s)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, alias := range ks.Aliases() {
		var ders []keystore.Certificate
		if e, err := ks.GetTrustedCertificateEntry(alias); err == nil {
			ders = append(ders, e.Certificate)
		} else if chain, err := ks.GetPrivateKeyEntryCertificateChain(alias); err == nil {
			ders = chain
		}
		parsed, err := parseJKSCerts(alias, ders)
		if err != nil {
			return nil, err
		}
		certs = append(certs, parsed...)
	}
	return certs, nil
}

func parseJKSCerts(alias string, ders []keystore.Certificate) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(ders))
	for _, d := range ders {
		c, err := x509.ParseCertificate(d.Content)
		if err != nil {
			return nil, fmt.Errorf("entry %q: bad certificate: %w", alias, err)
		}
		certs = append(certs, c)
	}
	return certs, nil
}

// p12Certs reads a Java truststore (certificates marked trusted) or, failing
// that, a plain PKCS12 bundle's certificate and chain.
func p12Certs(raw []byte, s config.Store) ([]*x509.Certificate, error) {
	raw, password, err := p12Input(raw, s)
	if err != nil {
		return nil, err
	}
	certs, err := pkcs12.DecodeTrustStore(raw, password)
	if err == nil {
		return certs, nil
	}
	if _, leaf, chain, err2 := pkcs12.DecodeChain(raw, password); err2 == nil {
		return append([]*x509.Certificate{leaf}, chain...), nil
	}
	return nil, p12Cause(err, s)
}

// p12Input prepares a PKCS12 file for go-pkcs12. Without a password, Java
// skips the MAC (and encrypted contents); go-pkcs12 verifies a MAC whenever
// there is one, so it is removed here, which lets the unencrypted
// certificates be read with the empty password. Encrypted ones stay
// unreadable, as in Java.
func p12Input(raw []byte, s config.Store) ([]byte, string, error) {
	if s.HasPassword {
		return raw, string(s.Password), nil
	}
	stripped, err := stripMAC(raw)
	if err != nil {
		return nil, "", fmt.Errorf("not a PKCS12 store: %w", err)
	}
	return stripped, "", nil
}

// pfxPDU is PKCS#12's outer structure (RFC 7292 §4) with its parts left raw.
type pfxPDU struct {
	Version  int
	AuthSafe asn1.RawValue
	MacData  asn1.RawValue `asn1:"optional"`
}

type pfxNoMAC struct {
	Version  int
	AuthSafe asn1.RawValue
}

func stripMAC(raw []byte) ([]byte, error) {
	var pfx pfxPDU
	if _, err := asn1.Unmarshal(raw, &pfx); err != nil {
		return nil, err
	}
	return asn1.Marshal(pfxNoMAC{Version: pfx.Version, AuthSafe: pfx.AuthSafe})
}

// p12Cause turns go-pkcs12's error into plain words.
func p12Cause(err error, s config.Store) error {
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword):
		return ErrWrongPassword
	case !s.HasPassword && errors.Is(err, pkcs12.ErrDecryption):
		return ErrEncryptedWithoutPasswd
	}
	return fmt.Errorf("unreadable PKCS12 store: %w", err)
}

// LoadKeyPair reads the client certificate and key of mutual TLS from a
// PKCS12 store, a JKS private key entry (key password = store password, as
// in TheHive) or PEM text holding the chain and the key. Every store is read
// and checked; the first one's pair is returned. A client certificate
// outside its validity at now is an error.
func LoadKeyPair(stores []config.Store, now time.Time) (*tls.Certificate, error) {
	var first *tls.Certificate
	var errs []error
	for _, s := range stores {
		pair, err := keyPair(s, now)
		if err != nil {
			errs = append(errs, storeErr(s, err))
		} else if first == nil {
			first = pair
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return first, nil
}

func keyPair(s config.Store, now time.Time) (*tls.Certificate, error) {
	raw, format, err := readStore(s)
	if err != nil {
		return nil, err
	}
	var pair *tls.Certificate
	switch format {
	case "PEM":
		pair, err = pemKeyPair(raw)
	case "JKS":
		pair, err = jksKeyPair(raw, s)
	case "PKCS12":
		pair, err = p12KeyPair(raw, s)
	}
	if err != nil {
		return nil, err
	}
	return pair, checkValidity(pair.Leaf, now)
}

func pemKeyPair(raw []byte) (*tls.Certificate, error) {
	certs, err := pemCerts(raw)
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, ErrNoCertificate
	}
	for block, rest := pem.Decode(raw); block != nil; block, rest = pem.Decode(rest) {
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			pair, err := tls.X509KeyPair(raw, pem.EncodeToMemory(block))
			if err != nil {
				return nil, err
			}
			return &pair, nil
		}
	}
	return nil, ErrNoPrivateKey
}

func jksKeyPair(raw []byte, s config.Store) (*tls.Certificate, error) {
	ks, err := loadJKS(raw, s)
	if err != nil {
		return nil, err
	}
	for _, alias := range ks.Aliases() {
		if !ks.IsPrivateKeyEntry(alias) {
			continue
		}
		entry, err := ks.GetPrivateKeyEntry(alias, []byte(s.Password))
		if err != nil {
			return nil, fmt.Errorf("entry %q: key password is not the store password: %w", alias, err)
		}
		key, err := x509.ParsePKCS8PrivateKey(entry.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("entry %q: bad private key: %w", alias, err)
		}
		chain, err := parseJKSCerts(alias, entry.CertificateChain)
		if err != nil {
			return nil, err
		}
		return assemble(key, chain)
	}
	return nil, ErrNoPrivateKey
}

func p12KeyPair(raw []byte, s config.Store) (*tls.Certificate, error) {
	raw, password, err := p12Input(raw, s)
	if err != nil {
		return nil, err
	}
	key, leaf, chain, err := pkcs12.DecodeChain(raw, password)
	if err != nil {
		if strings.Contains(err.Error(), "private key missing") {
			return nil, ErrNoPrivateKey
		}
		return nil, p12Cause(err, s)
	}
	return assemble(key, append([]*x509.Certificate{leaf}, chain...))
}

// assemble checks that the key belongs to the first certificate.
func assemble(key any, chain []*x509.Certificate) (*tls.Certificate, error) {
	if len(chain) == 0 {
		return nil, ErrNoCertificate
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	signer, isSigner := key.(crypto.Signer)
	if !ok || !isSigner || !pub.Equal(signer.Public()) {
		return nil, errors.New("private key does not match the certificate")
	}
	pair := &tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	return pair, nil
}

func checkValidity(leaf *x509.Certificate, now time.Time) error {
	const day = "2006-01-02"
	switch {
	case now.After(leaf.NotAfter):
		return fmt.Errorf("%w on %s", ErrClientCertExpired, leaf.NotAfter.UTC().Format(day))
	case now.Before(leaf.NotBefore):
		return fmt.Errorf("%w %s", ErrClientCertNotYetValid, leaf.NotBefore.UTC().Format(day))
	}
	return nil
}

// ExpirySoon is how close a client certificate's expiry must be for `check`
// and the start-up log to warn about it.
const ExpirySoon = 30 * 24 * time.Hour

// CertLine is a certificate's subject and expiry, for logs and `check`.
func CertLine(c *x509.Certificate, now time.Time) string {
	days := int(c.NotAfter.Sub(now).Hours() / 24)
	return fmt.Sprintf("%s, expires %s (%d days)", c.Subject, c.NotAfter.UTC().Format("2006-01-02"), days)
}
