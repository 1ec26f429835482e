package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/auditrelay/auditrelay/config"
)

// TLSConfig builds the client TLS settings of ws.ssl (webhooks, and the NATS
// connection through a config.SSL made of auditrelay.nats.tls).
//
//   - trust stores replace the system roots (RootCAs nil when none is set);
//   - the key store gives the client certificate;
//   - protocol is the minimum version (TLS 1.2 when empty), enabledProtocols
//     the allowed ones; enabledCipherSuites the TLS 1.2 suites by IANA name;
//   - loose.acceptAnyCertificate verifies nothing; disableHostnameVerification
//     verifies the chain, not the name; disableSNI sends no server name when
//     dialled through NewClient (see withoutSNI) yet verifies chain and name;
//   - debug logs each handshake (version, cipher suite, peer chain) at info.
//
// Each loose flag logs a warning. Its errors are *StoreError: reading the
// stores is all that can fail.
func TLSConfig(ssl config.SSL, logger *slog.Logger) (*tls.Config, error) {
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
	return cfg, nil
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

// NewClient builds the webhook's HTTP client, once, with every fallible step
// (stores, TLS settings, proxy) done here. It has its own Transport:
//
//   - timeout.connection bounds the TCP connect and, separately, the TLS
//     handshake;
//   - timeout.idle bounds the wait for the response headers once the request
//     is written (ResponseHeaderTimeout) and how long an unused keep-alive
//     connection is kept (IdleConnTimeout); a stalled body is bounded by the
//     attempt's context (timeout.request), set by the caller: the client has
//     no Timeout of its own;
//   - at most delivery.maxInFlight connections per endpoint, all of them kept
//     for reuse; HTTP/2 when the server offers it over TLS;
//   - only 307 and 308 are followed, and only with followRedirects
//     (checkRedirect); any other 3xx is returned as the response.
//
// Errors start with `webhook "<name>": ` and name the key path.
func NewClient(wh *config.Webhook, logger *slog.Logger) (*http.Client, error) {
	tlsCfg, err := TLSConfig(wh.WS.SSL, logger)
	if err != nil {
		return nil, webhookErr(wh, err)
	}
	tr := newTransport(wh, tlsCfg, logger)
	client := &http.Client{Transport: tr, CheckRedirect: checkRedirect(wh.WS.FollowRedirects)}
	if answersChallenges(wh) {
		client.Transport = challengeAnswerer{Transport: tr, choose: ProxyFor(wh)}
	}
	return client, nil
}

// maxRedirects bounds a chain of 307/308s, as net/http's default does.
const maxRedirects = 10

// checkRedirect follows only 307 and 308, which net/http re-sends with the
// same method, headers and body (through Request.GetBody; the signature
// stays valid, as it covers webhook-id, timestamp and body, not the URL).
// A 301, 302 or 303 would become a GET without the entry whose 2xx would
// count as delivered; it, any other 3xx, a 307/308 with followRedirects
// false and the 307/308 past maxRedirects are returned as the response,
// which Classify makes permanent. net/http drops Authorization when the
// redirect leaves the host (and its subdomains).
func checkRedirect(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow || len(via) > maxRedirects || req.Response == nil {
			return http.ErrUseLastResponse
		}
		switch req.Response.StatusCode {
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			return nil
		}
		return http.ErrUseLastResponse
	}
}

func newTransport(wh *config.Webhook, tlsCfg *tls.Config, logger *slog.Logger) *http.Transport {
	t := wh.WS.Timeout
	dialer := &net.Dialer{Timeout: t.Connection, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  ProxyFor(wh),
		OnProxyConnectResponse: onProxyConnectResponse,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tlsCfg,
		TLSHandshakeTimeout:    t.Connection,
		ResponseHeaderTimeout:  t.Idle,
		IdleConnTimeout:        t.Idle,
		MaxIdleConnsPerHost:    wh.Delivery.MaxInFlight,
		MaxConnsPerHost:        wh.Delivery.MaxInFlight,
		ForceAttemptHTTP2:      true,
	}
	if wh.WS.SSL.Loose.DisableSNI {
		v := &verifier{roots: tlsCfg.RootCAs, loose: wh.WS.SSL.Loose, debug: wh.WS.SSL.Debug, logger: orDiscard(logger)}
		tr.DialTLSContext = dialTLSWithoutSNI(dialer, tlsCfg, v)
	}
	if answersChallenges(wh) {
		tn := &tunneller{choose: ProxyFor(wh), tr: tr, dialer: dialer, timeout: t.Connection,
			direct: tr.DialTLSContext, tlsProxies: map[string]bool{}}
		tr.Proxy, tr.DialTLSContext = tn.proxy, tn.dialTLS
	}
	return tr
}

// dialTLSWithoutSNI serves direct https connections. Through a proxy,
// net/http does the TLS itself with TLSClientConfig and its host name, so
// SNI is then sent (and verified).
func dialTLSWithoutSNI(d *net.Dialer, cfg *tls.Config, v *verifier) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, v.withoutSNI(cfg, host))
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

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return l
}

// CheckStores reads a webhook's trust and key stores as NewClient would and
// returns every problem, named like NewClient's: `check` uses it for a
// webhook whose other keys have problems, so that one does not hide the
// other.
func CheckStores(wh *config.Webhook, now time.Time) error {
	var errs []error
	if ts := wh.WS.SSL.TrustManager.Stores; len(ts) > 0 {
		if _, _, err := LoadTrust(ts); err != nil {
			errs = append(errs, webhookErr(wh, err))
		}
	}
	if ks := wh.WS.SSL.KeyManager.Stores; len(ks) > 0 {
		if _, err := LoadKeyPair(ks, now); err != nil {
			errs = append(errs, webhookErr(wh, err))
		}
	}
	return errors.Join(errs...)
}

// webhookErr wraps err once with the webhook's name; a store's error
// already names its key path and file.
func webhookErr(wh *config.Webhook, err error) error {
	return fmt.Errorf("webhook %q: %w", wh.Name, err)
}
