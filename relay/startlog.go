package relay

import (
	"crypto/x509"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// storeAttrs summarise a webhook's trust and client certificate for the
// start-up log: subjects and expiry, never a password.
func storeAttrs(wh *config.Webhook, now time.Time) []any {
	trust := "system roots"
	if stores := wh.WS.SSL.TrustManager.Stores; len(stores) > 0 {
		_, certs, err := tlsconf.LoadTrust(stores)
		trust = certsOrError(certs, err, now)
	}
	attrs := []any{"trust", trust}
	if stores := wh.WS.SSL.KeyManager.Stores; len(stores) > 0 {
		pair, err := tlsconf.LoadKeyPair(stores, now)
		if err != nil {
			return append(attrs, "client", err.Error())
		}
		attrs = append(attrs, "client", tlsconf.CertLine(pair.Leaf, now))
	}
	if loose := wh.WS.SSL.Loose.Flags(); len(loose) > 0 {
		attrs = append(attrs, "weakened", strings.Join(loose, ","))
	}
	return attrs
}

func certsOrError(certs []*x509.Certificate, err error, now time.Time) string {
	if err != nil {
		return err.Error()
	}
	lines := make([]string, len(certs))
	for i, c := range certs {
		lines[i] = tlsconf.CertLine(c, now)
	}
	return strings.Join(lines, "; ")
}

// clientExpiresSoon returns the client certificate's subject and days left
// when it expires within expirySoon.
func clientExpiresSoon(wh *config.Webhook, now time.Time) (string, int, bool) {
	pair, err := tlsconf.LoadKeyPair(wh.WS.SSL.KeyManager.Stores, now)
	if err != nil || pair == nil {
		return "", 0, false
	}
	left := pair.Leaf.NotAfter.Sub(now)
	return pair.Leaf.Subject.String(), int(left.Hours() / 24), left < tlsconf.ExpirySoon
}
