package main

import (
	"fmt"
	"net"

	"github.com/auditrelay/auditrelay/config"
)

// ingest describes the ingest listener and prints, for each TheHive
// version, what points TheHive at it (SPEC §6).
func (d *describer) ingest(cfg *config.Config) {
	in := &cfg.Auditrelay.Ingest
	if !in.Enabled {
		return
	}
	url := ingestURL(in)
	d.line(0, "ingest")
	d.field("listen", "%s, stored on %s.<objectType>, at most %s a body", url, in.Subject, config.FormatSize(in.MaxEntryBytes))
	d.field("auth", "%s", authOf(&config.Webhook{Auth: in.Auth}))
	switch {
	case len(in.TLS.TrustManager.Stores) > 0:
		d.field("tls", "HTTPS; client certificates required, trusted by %d store(s)", len(in.TLS.TrustManager.Stores))
	case in.HTTPS():
		d.field("tls", "HTTPS")
	default:
		d.field("tls", "none (plain HTTP: keep the listener on loopback or a trusted network)")
	}
	d.field("dedup", "needs the audit stream's duplicate window of at least 10m (created so; an existing stream is checked at run start)")
	for _, w := range cfg.Webhooks {
		if w.IngestHop {
			d.field("hop", "%s (%s) is this listener: not delivered to", w.Name, w.KeyPath)
		}
	}
	d.recipes(in, url)
}

// ingestURL is the URL to give TheHive; a listener on all interfaces is
// shown on loopback, for a TheHive on the same host.
func ingestURL(in *config.Ingest) string {
	host, port, _ := net.SplitHostPort(in.Listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if in.HTTPS() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port) + "/"
}

// recipes prints the three ways TheHive is pointed at the listener; every
// credential stays ****.
func (d *describer) recipes(in *config.Ingest, url string) {
	auth := theHive4Auth(&in.Auth)
	d.line(1, "TheHive 3, in its application.conf:")
	d.line(2, `webhooks { auditrelay { url = %q } }`, url)
	if in.Auth.Type != config.AuthNone {
		d.line(2, "# TheHive 3 sends no auth header: authenticate it with a client certificate (tls.trustManager)")
	}
	if in.HTTPS() {
		d.line(2, `# and in play.ws.ssl (or webhooks.ws.ssl): trustManager.stores for this listener's CA, keyManager.stores for TheHive's client certificate`)
	}
	d.line(1, "TheHive 4, in its application.conf:")
	d.line(2, `notification.webhook.endpoints = [ { name = auditrelay, url = %q, version = 0, wsConfig {}, auth %s,`, url, auth)
	d.line(2, `  includedTheHiveOrganisations = ["*"], excludedTheHiveOrganisations = [] } ]`)
	d.line(2, "then, for each organisation, as one of its org-admins:")
	d.line(2, `curl -u <org-admin> -X PUT -H 'Content-Type: application/json' https://<thehive>/api/config/organisation/notification \`)
	d.line(2, `  -d '{"value":[{"delegate":false,"trigger":{"name":"AnyEvent"},"notifier":{"name":"webhook","endpoint":"auditrelay"}}]}'`)
	d.line(1, "TheHive 5, in each organisation: Notifications, a notification with trigger AnyEvent and a Webhook notifier")
	d.line(2, "whose endpoint has URL %s, method POST, auth %s", url, theHive5Auth(&in.Auth))
}

func theHive4Auth(a *config.Auth) string {
	switch a.Type {
	case config.AuthBasic:
		return fmt.Sprintf(`{ type = basic, username = %q, password = "****" }`, a.Username)
	case config.AuthBearer, config.AuthKey:
		return fmt.Sprintf(`{ type = %s, key = "****" }`, a.Type)
	}
	return "{ type = none }"
}

func theHive5Auth(a *config.Auth) string {
	switch a.Type {
	case config.AuthBasic:
		return fmt.Sprintf("Basic, username %s, password ****", a.Username)
	case config.AuthBearer:
		return "Bearer, token ****"
	case config.AuthKey:
		return "Key, the whole Authorization value ****"
	}
	return "none"
}
