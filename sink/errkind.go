package sink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
)

// Kinds of a failed request without an HTTP status (SPEC §4
// Auditrelay-Last-Status, metric code).
const (
	kindTLS     = "tls"
	kindProxy   = "proxy"
	kindTimeout = "timeout"
	kindConnect = "connect"
)

// errorKind classifies the error of a request that got no response into
// exactly one of "tls" (handshake failure, unknown authority, name mismatch,
// client certificate rejected — with TLS 1.3 the server's rejection arrives
// as a `remote error: tls: …` alert at the first read), "proxy" (CONNECT
// refused, proxy authentication, SOCKS failure, proxy unreachable),
// "timeout" (deadline, net timeouts) or "connect" (refused, reset, DNS,
// anything else). Proxy comes first: whatever fails on the way to the proxy
// is the proxy's. It returns "" for nil.
func errorKind(err error) string {
	switch {
	case err == nil:
		return ""
	case isProxy(err):
		return kindProxy
	case isTimeout(err):
		return kindTimeout
	case isTLS(err):
		return kindTLS
	}
	return kindConnect
}

func isProxy(err error) bool {
	var pe *proxyError
	if errors.As(err, &pe) {
		return true
	}
	var op *net.OpError
	for e := err; errors.As(e, &op); e = op.Err {
		// "proxyconnect": dialling (or TLS to) the proxy failed;
		// "socks connect": the SOCKS5 proxy refused or failed.
		if op.Op == "proxyconnect" || strings.HasPrefix(op.Op, "socks ") {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLS(err error) bool {
	var (
		verr   *tls.CertificateVerificationError
		rec    tls.RecordHeaderError
		alert  tls.AlertError
		unk    x509.UnknownAuthorityError
		host   x509.HostnameError
		inv    x509.CertificateInvalidError
		opErr  *net.OpError
		echErr *tls.ECHRejectionError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &rec), errors.As(err, &alert),
		errors.As(err, &unk), errors.As(err, &host), errors.As(err, &inv), errors.As(err, &echErr):
		return true
	case errors.As(err, &opErr) && (opErr.Op == "remote error" || opErr.Op == "local error"):
		// crypto/tls reports alerts as net.OpError{Op: "remote error"}.
		return true
	}
	// The rest of crypto/tls's handshake errors are plain errors.New("tls: …").
	return strings.Contains(err.Error(), "tls: ")
}
