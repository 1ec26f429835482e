package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/sink"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// describe writes what `auditrelay check` shows a person at a glance: NATS,
// then per webhook its redacted URL, format, filter, auth kind, proxy, the
// certificates of its trust stores and its client certificate with their
// expiry (a warning under 30 days). It never writes a secret. Every store
// problem is written with its key path and a suggestion, and returned.
func describe(cfg *config.Config, w io.Writer, now time.Time) error {
	d := &describer{w: w, now: now}
	d.line(0, "")
	d.nats(&cfg.Auditrelay.NATS)
	d.ingest(cfg)
	for i := range cfg.Webhooks {
		d.webhook(&cfg.Webhooks[i])
	}
	if d.err != nil {
		return fmt.Errorf("describe config: %w", d.err)
	}
	return errors.Join(d.problems...)
}

// describer writes lines and keeps the first write error and every problem.
type describer struct {
	w        io.Writer
	now      time.Time
	err      error
	problems []error
}

func (d *describer) line(indent int, format string, args ...any) {
	if d.err == nil {
		_, d.err = fmt.Fprintf(d.w, strings.Repeat("  ", indent)+format+"\n", args...)
	}
}

func (d *describer) field(key, format string, args ...any) {
	d.line(1, "%-9s "+format, append([]any{key}, args...)...)
}

func (d *describer) nats(n *config.NATS) {
	d.line(0, "nats")
	switch {
	case n.Embedded.Enabled:
		d.field("server", "embedded, listening on %s, store %s", n.Embedded.Listen, n.Embedded.StoreDir)
	case len(n.Servers) > 0:
		d.field("servers", "%s", strings.Join(redactAll(n.Servers), ", "))
	default:
		d.field("url", "%s", config.RedactURL(n.URL))
	}
	d.field("auth", "%s", natsAuthKind(&n.Auth))
	d.field("stream", "%s on %q, maxAge %s", n.Stream.Name, n.Subject, config.FormatDuration(n.Stream.MaxAge))
	if len(n.TLS.TrustManager.Stores)+len(n.TLS.KeyManager.Stores) == 0 {
		d.field("tls", "as the URL scheme says (tls:// trusts the system roots)")
		return
	}
	d.trust(n.TLS.TrustManager.Stores)
	d.client(n.TLS.KeyManager.Stores)
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = config.RedactURL(u)
	}
	return out
}

// natsAuthKind names the NATS auth method, never its secret.
func natsAuthKind(a *config.NATSAuth) string {
	switch {
	case a.CredsFile != "":
		return "credentials file " + a.CredsFile
	case a.NkeyFile != "":
		return "nkey file " + a.NkeyFile
	case a.Token != "":
		return "token ****"
	case a.User != "":
		return fmt.Sprintf("user %s, password ****", a.User)
	}
	return "none"
}

func (d *describer) webhook(wh *config.Webhook) {
	state := ""
	switch {
	case !wh.Enabled:
		state = " (disabled)"
	case wh.IngestHop:
		state = " (the ingest hop: not delivered to)"
	}
	d.line(0, "webhook %s%s  [%s]", wh.Name, state, wh.KeyPath)
	d.field("url", "%s", config.RedactURL(wh.URL))
	d.field("format", "%s, batch %d, orderBy %s, maxInFlight %d, start %s",
		wh.Format, wh.Batch.MaxEntries, wh.Delivery.OrderBy, wh.Delivery.MaxInFlight, wh.Delivery.Start)
	switch wh.Format {
	case config.FormatTemplate:
		d.field("template", "%s (%s)", wh.Template.File, wh.Template.ContentType)
	case config.FormatSplunk:
		d.field("splunk", "%s", splunkOf(wh.Splunk))
	}
	d.field("filter", "%s", filterOf(&wh.Filter))
	if wh.Filter.Expr != "" {
		d.field("expr", "%s", wh.Filter.Expr)
	}
	d.field("auth", "%s", authOf(wh))
	d.field("proxy", "%s", proxyOf(wh))
	d.trust(wh.WS.SSL.TrustManager.Stores)
	d.client(wh.WS.SSL.KeyManager.Stores)
	for _, l := range wh.WS.SSL.Loose.Flags() {
		d.field("warning", "ssl.loose.%s weakens TLS verification", l)
	}
}

// filterOf summarises a filter; empty lists mean all.
func filterOf(f *config.Filter) string {
	all := func(v []string) string {
		if len(v) == 0 {
			return "all"
		}
		return strings.Join(v, ",")
	}
	s := fmt.Sprintf("operations %s, objectTypes %s", all(f.Operations), all(f.ObjectTypes))
	if len(f.ExcludeObjectTypes) > 0 {
		s += " except " + strings.Join(f.ExcludeObjectTypes, ",")
	}
	if f.BaseOnly {
		s += ", base entries only"
	}
	if orgs := orgsOf(f); orgs != "" {
		s += ", organisations " + orgs
	}
	return s
}

// splunkOf lists the HEC metadata each event carries; empty ones are left
// out of the events, and here.
func splunkOf(s config.Splunk) string {
	var parts []string
	for _, kv := range [][2]string{{"source", s.Source}, {"sourcetype", s.Sourcetype}, {"index", s.Index}, {"host", s.Host}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(parts) == 0 {
		return "no metadata"
	}
	return strings.Join(parts, ", ")
}

// orgsOf summarises TheHive 4's organisation lists; "" when they let
// every organisation through (the default).
func orgsOf(f *config.Filter) string {
	inc, exc := strings.Join(f.IncludedOrganisations, ","), strings.Join(f.ExcludedOrganisations, ",")
	if (inc == "" || inc == "*") && exc == "" {
		return ""
	}
	if exc == "" {
		return inc
	}
	return inc + " except " + exc
}

// authOf names the auth kind and whether the request is signed; the
// values stay ****.
func authOf(wh *config.Webhook) string {
	s := string(wh.Auth.Type)
	switch wh.Auth.Type {
	case config.AuthNone:
	case config.AuthBasic:
		s = fmt.Sprintf("basic, user %s, password ****", wh.Auth.Username)
	default:
		s += " ****"
	}
	if n := len(wh.Signing.Secrets); n > 0 {
		s += fmt.Sprintf("; signed (Standard Webhooks, %d secret(s) ****)", n)
	}
	return s
}

// proxyOf is how a request to the webhook's URL leaves, without
// credentials.
func proxyOf(wh *config.Webhook) string {
	target, err := url.Parse(wh.URL)
	if err != nil {
		return "unknown: " + err.Error()
	}
	s := sink.DescribeProxy(wh, target)
	if wh.WS.Proxy.User != "" {
		s += fmt.Sprintf(" (user %s, password ****)", wh.WS.Proxy.User)
	}
	if wh.WS.Proxy.Host == "" && wh.WS.UseProxyProperties {
		s += " (from HTTPS_PROXY/HTTP_PROXY/NO_PROXY as now set)"
	}
	return s
}

// trust writes each trust store with its certificates, or "system roots".
func (d *describer) trust(stores []config.Store) {
	if len(stores) == 0 {
		d.field("trust", "system roots")
		return
	}
	for _, s := range stores {
		_, certs, err := tlsconf.LoadTrust([]config.Store{s})
		if err != nil {
			d.problem(err)
			continue
		}
		d.field("trust", "%s %s", s.Type, storeName(s))
		for _, c := range certs {
			d.line(3, "%s", tlsconf.CertLine(c, d.now))
		}
	}
}

// client writes the client certificate of each key store.
func (d *describer) client(stores []config.Store) {
	for _, s := range stores {
		pair, err := tlsconf.LoadKeyPair([]config.Store{s}, d.now)
		if err != nil {
			d.problem(err)
			continue
		}
		d.field("client", "%s %s", s.Type, storeName(s))
		d.line(3, "%s", tlsconf.CertLine(pair.Leaf, d.now))
		if left := pair.Leaf.NotAfter.Sub(d.now); left < tlsconf.ExpirySoon {
			d.field("warning", "client certificate %q expires in %d days: renew it", pair.Leaf.Subject.CommonName, int(left.Hours()/24))
		}
	}
}

func storeName(s config.Store) string {
	if s.Path == "" {
		return "inline data"
	}
	return s.Path
}

// problem writes a store problem with its key path and a suggestion.
func (d *describer) problem(err error) {
	d.problems = append(d.problems, err)
	d.field("problem", "%v", err)
	if s := suggestion(err); s != "" {
		d.line(3, "suggestion: %s", s)
	}
}

var suggestions = []struct {
	err  error
	text string
}{
	{tlsconf.ErrWrongPassword, "check the store's password (and the environment variable it comes from)"},
	{tlsconf.ErrNoCertificate, "import the CA (trust store) or the certificate chain (key store) into it"},
	{tlsconf.ErrNoPrivateKey, "a key store needs a private key entry with its certificate chain"},
	{tlsconf.ErrClientCertExpired, "renew the client certificate"},
	{tlsconf.ErrClientCertNotYetValid, "check this host's clock, or wait until the certificate's start"},
	{tlsconf.ErrEncryptedWithoutPasswd, "set the store's password"},
	{fs.ErrNotExist, "check the path: relative paths resolve against the config file's directory"},
	{fs.ErrPermission, "let auditrelay's user read the file"},
}

func suggestion(err error) string {
	for _, s := range suggestions {
		if errors.Is(err, s.err) {
			return s.text
		}
	}
	return ""
}
