// Package tlsconf is the TLS material of auditrelay: trust and key stores
// (JKS, PKCS12, PEM) read as TheHive reads them, and the TLS configurations
// built from them for the webhooks, the NATS connection and the ingest
// listener. It imports only config.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/auditrelay/auditrelay/config"
)

// ClientTLS is a client's TLS from ws.ssl: its configuration, and what a
// connection that sends no server name (disableSNI) needs.
type ClientTLS struct {
	Config *tls.Config
	v      *verifier
}

// Client builds the client TLS settings of ws.ssl (webhooks, and the NATS
// connection through a config.SSL made of auditrelay.nats.tls).
//
//   - trust stores replace the system roots (RootCAs nil when none is set);
//   - the key store gives the client certificate;
//   - protocol is the minimum version (TLS 1.2 when empty), enabledProtocols
//     the allowed ones; enabledCipherSuites the TLS 1.2 suites by IANA name;
//   - loose.acceptAnyCertificate verifies nothing; disableHostnameVerification
//     verifies the chain, not the name; disableSNI sends no server name when
//     dialled through DialWithoutSNI, yet verifies chain and name;
//   - debug logs each handshake (version, cipher suite, peer chain) at info.
//
// Each loose flag logs a warning. Its errors are *StoreError: reading the
// stores is all that can fail.
func Client(ssl config.SSL, logger *slog.Logger) (*ClientTLS, error) {
	logger = orDiscard(logger)
	cfg := &tls.Config{}
	if err := setTrust(cfg, ssl); err != nil {
		return nil, err
	}
	setVersions(cfg, ssl)
	for _, id := range ssl.EnabledCipherSuites {
		cfg.CipherSuites = append(cfg.CipherSuites, uint16(id))
	}
	v := &verifier{roots: cfg.RootCAs, loose: ssl.Loose, debug: ssl.Debug, logger: logger}
	v.install(cfg)
	warnLoose(ssl.Loose, logger)
	return &ClientTLS{Config: cfg, v: v}, nil
}

// DialWithoutSNI dials direct https connections that send no server name
// (disableSNI) and still verify as configured. Through a proxy, net/http
// does the TLS itself with Config and its host name, so SNI is then sent
// (and verified).
func (c *ClientTLS) DialWithoutSNI(d *net.Dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, c.v.withoutSNI(c.Config, host))
		if d.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, d.Timeout)
			defer cancel()
		}
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}
}

func setTrust(cfg *tls.Config, ssl config.SSL) error {
	if stores := ssl.TrustManager.Stores; len(stores) > 0 {
		pool, _, err := LoadTrust(stores)
		if err != nil {
			return err
		}
		cfg.RootCAs = pool
	}
	if stores := ssl.KeyManager.Stores; len(stores) > 0 {
		pair, err := LoadKeyPair(stores, time.Now())
		if err != nil {
			return err
		}
		cfg.Certificates = []tls.Certificate{*pair}
	}
	return nil
}

// setVersions applies protocol (the minimum, never below TLS 1.2) and
// enabledProtocols (the range allowed); config has checked that they
// leave a version.
func setVersions(cfg *tls.Config, ssl config.SSL) {
	cfg.MinVersion = max(uint16(ssl.Protocol), tls.VersionTLS12)
	if len(ssl.EnabledProtocols) > 0 {
		cfg.MinVersion = max(cfg.MinVersion, uint16(slices.Min(ssl.EnabledProtocols)))
		cfg.MaxVersion = uint16(slices.Max(ssl.EnabledProtocols))
	}
}

func warnLoose(l config.Loose, logger *slog.Logger) {
	if l.AcceptAnyCertificate {
		logger.Warn("TLS: ssl.loose.acceptAnyCertificate is set: the server's certificate is not verified")
	}
	if l.DisableHostnameVerification {
		logger.Warn("TLS: ssl.loose.disableHostnameVerification is set: the server's name is not verified")
	}
	if l.DisableSNI {
		logger.Warn("TLS: ssl.loose.disableSNI is set: no server name is sent")
	}
}

// verifier replaces crypto/tls's verification when a loose flag or debug
// asks for something else; otherwise crypto/tls verifies as usual.
type verifier struct {
	roots  *x509.CertPool // nil: system roots
	loose  config.Loose
	debug  bool
	logger *slog.Logger
}

func (v *verifier) install(cfg *tls.Config) {
	custom := v.loose.AcceptAnyCertificate || v.loose.DisableHostnameVerification || v.loose.DisableSNI
	if !custom && !v.debug {
		return
	}
	cfg.InsecureSkipVerify = custom
	cfg.VerifyConnection = func(cs tls.ConnectionState) error { return v.verify(cs, cs.ServerName, custom) }
}

// verify checks cs against host. Without SNI the host is not in cs, so
// withoutSNI binds it per connection; a host still unknown is refused rather
// than left unverified.
func (v *verifier) verify(cs tls.ConnectionState, host string, custom bool) error {
	v.logHandshake(cs, host)
	switch {
	case !custom || v.loose.AcceptAnyCertificate:
		return nil
	case v.loose.DisableHostnameVerification:
		return v.verifyChain(cs, "")
	case host == "":
		return errors.New("tls: disableSNI: no host name to verify the certificate against")
	}
	return v.verifyChain(cs, host)
}

func (v *verifier) verifyChain(cs tls.ConnectionState, host string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: v.roots, DNSName: host, Intermediates: x509.NewCertPool()}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	if err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

func (v *verifier) logHandshake(cs tls.ConnectionState, host string) {
	if !v.debug {
		return
	}
	chain := make([]string, 0, len(cs.PeerCertificates))
	for _, c := range cs.PeerCertificates {
		chain = append(chain, c.Subject.String())
	}
	v.logger.Info("TLS handshake", "host", host, "version", tls.VersionName(cs.Version),
		"cipherSuite", tls.CipherSuiteName(cs.CipherSuite), "alpn", cs.NegotiatedProtocol,
		"peerChain", chain, "resumed", cs.DidResume)
}

// withoutSNI is cfg for one connection to host that sends no server name
// but still verifies chain and host name (unless acceptAnyCertificate or
// disableHostnameVerification says otherwise).
func (v *verifier) withoutSNI(cfg *tls.Config, host string) *tls.Config {
	c := cfg.Clone()
	c.ServerName = ""
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error { return v.verify(cs, host, true) }
	return c
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}

// CheckStores reads the trust and key stores of ssl as Client would and
// returns every problem: `check` reads the stores of a webhook whose other
// keys have problems.
func CheckStores(ssl config.SSL, now time.Time) error {
	var errs []error
	if ts := ssl.TrustManager.Stores; len(ts) > 0 {
		if _, _, err := LoadTrust(ts); err != nil {
			errs = append(errs, err)
		}
	}
	if ks := ssl.KeyManager.Stores; len(ks) > 0 {
		if _, err := LoadKeyPair(ks, now); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
