package config

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Print writes the resolved config as HOCON-like text for `auditrelay
// check`: every key with its value after defaults and layering, webhook
// URLs as scheme://host:port/**** (RedactURL), every secret and every
// configured header value as ****. It
// does not print Warnings.
func (c *Config) Print(w io.Writer) error {
	p := &printer{w: w}
	if c.File != "" {
		p.line("# %s", c.File)
	}
	p.auditrelay(&c.Auditrelay)
	p.open("webhooks")
	for i := range c.Webhooks {
		p.webhook(&c.Webhooks[i])
	}
	p.close()
	if p.err != nil {
		return fmt.Errorf("print config: %w", p.err)
	}
	return nil
}

// printer indents blocks and keeps the first write error.
type printer struct {
	w      io.Writer
	indent int
	err    error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, strings.Repeat("  ", p.indent)+format+"\n", args...)
	}
}

func (p *printer) open(key string) { p.line("%s {", key); p.indent++ }
func (p *printer) close()          { p.indent--; p.line("}") }

func (p *printer) str(key, v string)          { p.line("%s = %s", key, strconv.Quote(v)) }
func (p *printer) boolean(key string, v bool) { p.line("%s = %t", key, v) }
func (p *printer) num(key string, v int)      { p.line("%s = %d", key, v) }
func (p *printer) dur(key string, v time.Duration) {
	p.line("%s = %s", key, formatDuration(v))
}

// secret prints **** for a set secret and nothing for an unset one.
func (p *printer) secret(key string, v Secret) {
	if v != "" {
		p.line("%s = %q", key, v.String())
	}
}

func (p *printer) list(key string, vs []string) {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	p.line("%s = [%s]", key, strings.Join(q, ", "))
}

func (p *printer) auditrelay(a *Auditrelay) {
	p.open("auditrelay")
	p.nats(&a.NATS)
	p.str("deadLetter.subject", a.DeadLetter.Subject)
	p.open("admin")
	p.str("listen", a.Admin.Listen)
	p.secret("fetch.key", a.Admin.Fetch.Key)
	p.secret("fetch.secret", a.Admin.Fetch.Secret)
	p.close()
	p.ingest(&a.Ingest)
	p.line("log { level = %s, format = %s }", a.Log.Level, a.Log.Format)
	p.dur("shutdownTimeout", a.ShutdownTimeout)
	p.close()
}

func (p *printer) nats(n *NATS) {
	p.open("nats")
	if n.Embedded.Enabled {
		p.line("embedded { enabled = true, listen = %q, storeDir = %q }", n.Embedded.Listen, n.Embedded.StoreDir)
	} else if len(n.Servers) > 0 {
		p.list("servers", redactAll(n.Servers))
	} else {
		p.str("url", RedactURL(n.URL))
	}
	p.str("subject", n.Subject)
	p.line("stream { name = %s, create = %t, maxAge = %s, replicas = %d }",
		n.Stream.Name, n.Stream.Create, formatDuration(n.Stream.MaxAge), n.Stream.Replicas)
	p.str("durablePrefix", n.DurablePrefix)
	p.line("maxEntryBytes = %s", formatSize(n.MaxEntryBytes))
	p.natsAuth(&n.Auth)
	p.stores("tls.trustManager.stores", n.TLS.TrustManager.Stores)
	p.stores("tls.keyManager.stores", n.TLS.KeyManager.Stores)
	p.close()
}

func (p *printer) ingest(in *Ingest) {
	p.open("ingest")
	p.boolean("enabled", in.Enabled)
	p.str("listen", in.Listen)
	p.str("subject", in.Subject)
	p.auth(&in.Auth)
	p.stores("tls.keyManager.stores", in.TLS.KeyManager.Stores)
	p.stores("tls.trustManager.stores", in.TLS.TrustManager.Stores)
	p.line("maxEntryBytes = %s", formatSize(in.MaxEntryBytes))
	p.close()
}

func redactAll(urls []string) []string {
	out := make([]string, len(urls))
	for i, u := range urls {
		out[i] = RedactURL(u)
	}
	return out
}

func (p *printer) natsAuth(a *NATSAuth) {
	if *a == (NATSAuth{}) {
		return
	}
	p.open("auth")
	if a.CredsFile != "" {
		p.str("credsFile", a.CredsFile)
	}
	if a.NkeyFile != "" {
		p.str("nkeyFile", a.NkeyFile)
	}
	p.secret("token", a.Token)
	if a.User != "" {
		p.str("user", a.User)
	}
	p.secret("password", a.Password)
	p.close()
}

func (p *printer) stores(key string, stores []Store) {
	if len(stores) == 0 {
		return
	}
	p.line("%s = [", key)
	p.indent++
	for _, s := range stores {
		where := "path = " + strconv.Quote(s.Path)
		if s.Data != "" {
			where = fmt.Sprintf("data = \"(inline PEM, %d bytes)\"", len(s.Data))
		}
		pw := ""
		if s.HasPassword {
			pw = ", password = \"" + redacted + "\""
		}
		p.line("{ type = %s, %s%s }  # %s", s.Type, where, pw, s.KeyPath)
	}
	p.indent--
	p.line("]")
}

func (p *printer) webhook(w *Webhook) {
	p.line("%s {  # %s", quoteKey(w.Name), w.KeyPath)
	p.indent++
	p.str("url", RedactURL(w.URL))
	p.boolean("enabled", w.Enabled)
	if w.IngestHop {
		p.line("# the ingest hop (auditrelay.ingest.listen): not delivered to")
	}
	p.line("format = %s", w.Format)
	switch w.Format {
	case "template":
		p.line("template { file = %s, contentType = %s }", strconv.Quote(w.Template.File), strconv.Quote(w.Template.ContentType))
	case "splunk":
		s := w.Splunk
		p.line("splunk { source = %s, sourcetype = %s, index = %s, host = %s }",
			strconv.Quote(s.Source), strconv.Quote(s.Sourcetype), strconv.Quote(s.Index), strconv.Quote(s.Host))
	}
	p.auth(&w.Auth)
	p.headers(w.Headers)
	if len(w.Signing.Secrets) > 0 {
		p.line("signing.secret = [%s]", strings.TrimSuffix(strings.Repeat(`"****", `, len(w.Signing.Secrets)), ", "))
	}
	p.filter(&w.Filter)
	p.line("batch { maxEntries = %d, maxWait = %s }", w.Batch.MaxEntries, formatDuration(w.Batch.MaxWait))
	p.delivery(&w.Delivery)
	p.ws(&w.WS)
	p.close()
}

func quoteKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}

func (p *printer) auth(a *Auth) {
	if a.Type == "none" || a.Type == "" {
		p.line("auth { type = none }")
		return
	}
	p.open("auth")
	p.line("type = %s", a.Type)
	if a.Username != "" {
		p.str("username", a.Username)
	}
	p.secret("password", a.Password)
	p.secret("key", a.Key)
	p.close()
}

func (p *printer) headers(h map[string]string) {
	if len(h) == 0 {
		return
	}
	p.open("headers")
	// Every value is a secret: any header may carry a credential
	// (X-Api-Key, X-Auth, a tenant token), whatever its name.
	for _, k := range slices.Sorted(maps.Keys(h)) {
		p.str(strconv.Quote(k), redacted)
	}
	p.close()
}

func (p *printer) filter(f *Filter) {
	p.open("filter")
	p.list("operations", f.Operations)
	p.list("objectTypes", f.ObjectTypes)
	p.list("excludeObjectTypes", f.ExcludeObjectTypes)
	p.boolean("baseOnly", f.BaseOnly)
	if f.Expr != "" {
		p.str("expr", f.Expr)
	}
	p.list("includedTheHiveOrganisations", f.IncludedOrganisations)
	p.list("excludedTheHiveOrganisations", f.ExcludedOrganisations)
	p.close()
}

func (p *printer) delivery(d *Delivery) {
	p.open("delivery")
	start := d.Start.Mode
	if d.Start.Mode == "time" {
		start = strconv.Quote(d.Start.Time.Format(time.RFC3339))
	}
	p.line("start = %s", start)
	p.num("maxInFlight", d.MaxInFlight)
	p.line("orderBy = %s", d.OrderBy)
	r := d.Retry
	p.line("retry { maxAttempts = %d, initialBackoff = %s, maxBackoff = %s, maxAge = %s }",
		r.MaxAttempts, formatDuration(r.InitialBackoff), formatDuration(r.MaxBackoff), formatDuration(r.MaxAge))
	p.close()
}

func (p *printer) ws(w *WS) {
	p.open("ws")
	p.boolean("followRedirects", w.FollowRedirects)
	if w.UserAgent != "" {
		p.str("useragent", w.UserAgent)
	}
	p.boolean("compressionEnabled", w.CompressionEnabled)
	t := w.Timeout
	p.line("timeout { connection = %s, idle = %s, request = %s }",
		formatDuration(t.Connection), formatDuration(t.Idle), formatDuration(t.Request))
	p.boolean("useProxyProperties", w.UseProxyProperties)
	p.proxy(&w.Proxy)
	p.ssl(&w.SSL)
	p.close()
}

func (p *printer) proxy(x *Proxy) {
	if x.Host == "" {
		return
	}
	p.open("proxy")
	p.line("protocol = %s, host = %q, port = %d", x.Protocol, x.Host, x.Port)
	if x.User != "" {
		p.str("user", x.User)
	}
	p.secret("password", x.Password)
	if len(x.NonProxyHosts) > 0 {
		p.list("nonProxyHosts", x.NonProxyHosts)
	}
	p.close()
}

func (p *printer) ssl(s *SSL) {
	p.open("ssl")
	p.stores("trustManager.stores", s.TrustManager.Stores)
	p.stores("keyManager.stores", s.KeyManager.Stores)
	p.str("protocol", s.Protocol)
	if len(s.EnabledProtocols) > 0 {
		p.list("enabledProtocols", s.EnabledProtocols)
	}
	if len(s.EnabledCipherSuites) > 0 {
		p.list("enabledCipherSuites", s.EnabledCipherSuites)
	}
	l := s.Loose
	if l != (Loose{}) {
		p.line("loose { acceptAnyCertificate = %t, disableHostnameVerification = %t, disableSNI = %t }",
			l.AcceptAnyCertificate, l.DisableHostnameVerification, l.DisableSNI)
	}
	p.boolean("debug", s.Debug)
	p.close()
}
