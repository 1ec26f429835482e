package config

import (
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gurkankaymak/hocon"
)

// decode reads the sections auditrelay uses from root; every other
// top-level section belongs to the application and is ignored.
func (d *decoder) decode(root hocon.Object) *Config {
	cfg := &Config{Auditrelay: Default()}
	top := d.node("", root, false)
	if n := top.child("auditrelay"); n != nil {
		d.auditrelay(n, &cfg.Auditrelay)
	}
	d.resolveStoreDir(&cfg.Auditrelay.NATS.Embedded)
	play := playWS(root)
	d.applyWS(d.node("play.ws", play, true), new(WS)) // report it even without a webhook
	cfg.Webhooks = append(d.theHive3(top, play), d.theHive4(root, play)...)
	slices.SortFunc(cfg.Webhooks, func(a, b Webhook) int { return strings.Compare(a.Name, b.Name) })
	d.checkNames(cfg.Webhooks)
	d.checkThin(cfg)
	d.checkDeadLetterSubject(&cfg.Auditrelay)
	d.markIngestHops(cfg)
	slices.Sort(d.warnings)
	cfg.Warnings = d.warnings
	return cfg
}

// resolveStoreDir makes the store directory absolute; the embedded server
// creates it, so it need not exist.
func (d *decoder) resolveStoreDir(e *Embedded) {
	if e.StoreDir != "" && !filepath.IsAbs(e.StoreDir) {
		e.StoreDir = filepath.Join(d.dir, e.StoreDir)
	}
}

// playWS returns the application's `play.ws` object, or nil.
func playWS(root hocon.Object) hocon.Object {
	play, _ := root["play"].(hocon.Object)
	ws, _ := play["ws"].(hocon.Object)
	return ws
}

// layers are the ws objects under a webhook's own, lowest first.
type layers []*node

// ws builds a webhook's HTTP client settings: the defaults, then each layer,
// then its own ws object (may be nil).
func (d *decoder) ws(shared layers, own *node) WS {
	w := DefaultWS()
	for _, l := range append(shared, own) {
		if l != nil {
			d.applyWS(d.node(l.path, l.obj, l.lenient), &w)
		}
	}
	return w
}

// theHive3 reads the top-level `webhooks { … }` block (SPEC §2.1).
func (d *decoder) theHive3(top *node, play hocon.Object) []Webhook {
	n := top.child("webhooks")
	if n == nil {
		return nil
	}
	shared := layers{d.node("play.ws", play, true)}
	if c := n.child("ws"); c != nil {
		shared = append(shared, c)
		d.applyWS(c, new(WS)) // report its problems even without a webhook
	}
	var hooks []Webhook
	for _, name := range sortedKeys(n.obj) {
		if name == "ws" {
			continue
		}
		if c := n.child(name); c != nil {
			if _, ok := c.obj["url"]; !ok {
				c.d.fail(c.path, newKind(ErrRequired, "url required: a child of webhooks is a webhook (or ws, the defaults of all)"))
				continue
			}
			hooks = append(hooks, d.theHive3Webhook(name, c, shared))
		}
	}
	return hooks
}

func sortedKeys(obj hocon.Object) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (d *decoder) theHive3Webhook(name string, n *node, shared layers) Webhook {
	w := DefaultWebhook()
	w.Name, w.KeyPath = name, n.path
	n.str("url", &w.URL)
	w.WS = d.ws(shared, n.child("ws"))
	var cert string
	if n.str("cert", &cert) {
		w.WS.SSL.TrustManager.Stores = append(w.WS.SSL.TrustManager.Stores,
			Store{Type: "PEM", Path: d.file(n.at("cert"), cert), KeyPath: n.at("cert")})
		d.warn(n.at("cert"), "deprecated, use ws.ssl.trustManager.stores")
	}
	d.extensions(n, &w)
	d.checkWebhook(&w, n.at("ws"))
	return w
}

// theHive4 reads `notification.webhook.endpoints = [ … ]` (SPEC §2.2); the
// other keys of `notification` are the application's.
func (d *decoder) theHive4(root hocon.Object, play hocon.Object) []Webhook {
	notification, _ := root["notification"].(hocon.Object)
	webhook, _ := notification["webhook"].(hocon.Object)
	n := d.node("notification.webhook", webhook, false)
	var hooks []Webhook
	n.objects("endpoints", func(_ int, e *node) {
		hooks = append(hooks, d.theHive4Webhook(e, layers{d.node("play.ws", play, true)}))
	})
	return hooks
}

func (d *decoder) theHive4Webhook(n *node, shared layers) Webhook {
	w := DefaultWebhook()
	w.KeyPath = n.path
	if !n.str("name", &w.Name) || w.Name == "" {
		n.fail("name", errRequired)
	}
	n.str("url", &w.URL)
	var version int
	n.integer("version", &version) // TheHive's payload version: auditrelay sends entries as published
	w.WS = d.ws(shared, n.child("wsConfig"))
	n.strings("includedTheHiveOrganisations", &w.Filter.IncludedOrganisations)
	n.strings("excludedTheHiveOrganisations", &w.Filter.ExcludedOrganisations)
	d.extensions(n, &w)
	d.checkWebhook(&w, n.at("wsConfig"))
	return w
}

// extensions reads the keys of SPEC §2.3, the same in both syntaxes, and
// reports the unknown ones.
func (d *decoder) extensions(n *node, w *Webhook) {
	if c := n.child("auth"); c != nil {
		d.auth(c, &w.Auth)
	}
	d.headers(n, w)
	if c := n.child("signing"); c != nil {
		d.signing(c, &w.Signing)
	}
	if c := n.child("filter"); c != nil {
		d.filter(c, &w.Filter)
	}
	oneOf(n, "format", &w.Format, Formats...)
	d.formatSettings(n, w)
	if c := n.child("batch"); c != nil {
		if c.integer("maxEntries", &w.Batch.MaxEntries) && (w.Batch.MaxEntries < 1 || w.Batch.MaxEntries > MaxBatchEntries) {
			c.fail("maxEntries", invalid("must be from 1 to %d, got %d", MaxBatchEntries, w.Batch.MaxEntries))
		}
		if c.duration("maxWait", &w.Batch.MaxWait) && w.Batch.MaxWait < 0 {
			c.fail("maxWait", invalid("must not be negative"))
		}
		c.finish()
	}
	if c := n.child("delivery"); c != nil {
		d.delivery(c, &w.Delivery)
	}
	n.boolean("enabled", &w.Enabled)
	n.finish()
}

func (d *decoder) auth(n *node, a *Auth) {
	_, hasType := n.obj["type"]
	typeOK := oneOf(n, "type", &a.Type, AuthNone, AuthBasic, AuthBearer, AuthKey) || !hasType
	hasUser, hasPassword := n.str("username", &a.Username), n.secret("password", &a.Password)
	hasKey := n.secret("key", &a.Key)
	want := map[AuthType][]string{AuthBasic: {"username", "password"}, AuthBearer: {"key"}, AuthKey: {"key"}}[a.Type]
	for key, has := range map[string]bool{"username": hasUser, "password": hasPassword, "key": hasKey} {
		switch {
		case !typeOK: // the type's own error says it all
		case has && !slices.Contains(want, key):
			n.fail(key, invalid("not used with type %s", a.Type))
		case !has && slices.Contains(want, key):
			n.fail(key, newKind(ErrRequired, "required with type %s", a.Type))
		}
	}
	if !validHeaderValue(a.Username + string(a.Password) + string(a.Key)) {
		// Never quoted: the value is a credential.
		n.d.fail(n.path, newKind(ErrAuth, "%s: credentials hold a control character", ErrAuth))
	}
	n.finish()
}

func (d *decoder) headers(n *node, w *Webhook) {
	c := n.child("headers")
	if c == nil {
		return
	}
	w.Headers = map[string]string{}
	for _, name := range sortedKeys(c.obj) {
		var v string
		if !c.str(name, &v) {
			continue
		}
		if err := checkHeader(name, v, w.Auth.Type); err != nil {
			c.fail(name, err)
			continue
		}
		w.Headers[http.CanonicalHeaderKey(name)] = v
	}
}

// signing reads `secret`: one string of space-separated secrets (as
// Standard Webhooks rotation does) or a list.
func (d *decoder) signing(n *node, s *Signing) {
	var secrets []string
	if v, ok := n.obj["secret"]; ok {
		if _, isList := v.(hocon.Array); !isList {
			var one string
			n.str("secret", &one)
			secrets = strings.Fields(one)
		} else {
			n.strings("secret", &secrets)
		}
	}
	n.known = append(n.known, "secret")
	for i, sec := range secrets {
		if err := checkSigningSecret(sec); err != nil {
			d.fail(n.at("secret")+"["+itoa(i)+"]", err)
			continue
		}
		s.Secrets = append(s.Secrets, Secret(sec))
	}
	n.finish()
}

// checkSigningSecret never quotes the secret: it is one.
func checkSigningSecret(s string) error {
	rest, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return invalid(`a signing secret must start with "whsec_"`)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || rest == "" {
		return invalid(`a signing secret must be "whsec_" and base64`)
	}
	if len(key) < MinSigningKey {
		// The Standard Webhooks specification asks for 24 to 64 bytes.
		return invalid("a signing secret's key must be at least %d bytes, got %d", MinSigningKey, len(key))
	}
	return nil
}

// MinSigningKey is the shortest signing key accepted: the Standard Webhooks
// specification asks for 24 to 64 bytes.
const MinSigningKey = 24

func (d *decoder) filter(n *node, f *Filter) {
	var ops []string
	if n.strings("operations", &ops) {
		f.Operations = nil
		for i, op := range ops {
			norm := NormaliseOperation(op)
			if norm == "" {
				d.fail(n.at("operations")+"["+itoa(i)+"]", invalid("%s is not one of Creation, Update, Delete", quoteValue(op)))
				continue
			}
			f.Operations = append(f.Operations, norm)
		}
	}
	n.strings("objectTypes", &f.ObjectTypes)
	n.strings("excludeObjectTypes", &f.ExcludeObjectTypes)
	n.boolean("baseOnly", &f.BaseOnly)
	if n.str("expr", &f.Expr) && strings.TrimSpace(f.Expr) != "" {
		if _, err := CompileExpr(f.Expr); err != nil {
			n.fail("expr", invalid("%v", err))
		}
	}
	n.finish()
}

// formatSettings reads `template` and `splunk`, each of which belongs to
// its format: a block for another format is a mistake worth reporting.
func (d *decoder) formatSettings(n *node, w *Webhook) {
	if c := n.child("template"); c != nil {
		if w.Format != "template" {
			n.fail("template", invalid("used only with format = template"))
		}
		d.template(c, &w.Template)
	} else if w.Format == "template" {
		n.fail("template", newKind(ErrRequired, "required with format = template"))
	}
	if c := n.child("splunk"); c != nil {
		if w.Format != "splunk" {
			n.fail("splunk", invalid("used only with format = splunk"))
		}
		c.str("source", &w.Splunk.Source)
		c.str("sourcetype", &w.Splunk.Sourcetype)
		c.str("index", &w.Splunk.Index)
		c.str("host", &w.Splunk.Host)
		c.finish()
	}
}

// template reads, resolves and parses the template file, so that one that
// cannot be read or does not parse is reported with the other problems.
func (d *decoder) template(n *node, t *Template) {
	if n.str("contentType", &t.ContentType) && strings.ContainsAny(t.ContentType, "\r\n") {
		n.fail("contentType", invalid("must not contain a line break"))
	}
	var file string
	if !n.str("file", &file) || file == "" {
		n.fail("file", errRequired)
		n.finish()
		return
	}
	t.File = d.file(n.at("file"), file)
	n.finish()
	data, err := os.ReadFile(t.File)
	if err != nil {
		return // reported by d.file
	}
	t.Text = string(data)
	if _, err := ParseTemplate(filepath.Base(t.File), t.Text); err != nil {
		n.fail("file", invalid("%v", err))
	}
}

func (d *decoder) delivery(n *node, del *Delivery) {
	var start string
	if n.str("start", &start) {
		del.Start = parseStart(n, start, del.Start)
	}
	if n.integer("maxInFlight", &del.MaxInFlight) && (del.MaxInFlight < 1 || del.MaxInFlight > MaxInFlight) {
		n.fail("maxInFlight", invalid("must be from 1 to %d, got %d", MaxInFlight, del.MaxInFlight))
	}
	oneOf(n, "orderBy", &del.OrderBy, OrderByRootID, OrderByObjectID, OrderByNone)
	if c := n.child("retry"); c != nil {
		d.retry(c, &del.Retry)
	}
	n.finish()
}

func parseStart(n *node, s string, def Start) Start {
	switch m := StartMode(strings.ToLower(s)); m {
	case StartNew, StartAll:
		return Start{Mode: m}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		n.fail("start", invalid("%s is not new, all or an RFC 3339 time", quoteValue(s)))
		return def
	}
	return Start{Mode: StartTime, Time: t}
}

func (d *decoder) retry(n *node, r *Retry) {
	if n.integer("maxAttempts", &r.MaxAttempts) && r.MaxAttempts < 1 {
		n.fail("maxAttempts", invalid("must be at least 1, got %d", r.MaxAttempts))
	}
	n.positiveDuration("initialBackoff", &r.InitialBackoff)
	n.positiveDuration("maxBackoff", &r.MaxBackoff)
	n.positiveDuration("maxAge", &r.MaxAge)
	if r.InitialBackoff > r.MaxBackoff {
		n.fail("initialBackoff", invalid("%s is more than maxBackoff %s",
			formatDuration(r.InitialBackoff), formatDuration(r.MaxBackoff)))
	}
	n.finish()
}

// checkWebhook checks what needs the whole webhook, its layered ws settings
// included; wsPath is where its own ws object is (or would be).
func (d *decoder) checkWebhook(w *Webhook, wsPath string) {
	if err := checkWebhookURL(w.URL); err != nil {
		d.fail(w.KeyPath+".url", err)
	}
	p := &w.WS.Proxy
	if p.Host != "" || p.Port != 0 {
		n := d.node(wsPath+".proxy", nil, false)
		requireBoth(n, "host", p.Host != "", "port", p.Port != 0)
	}
	if p.Host != "" && p.Protocol == "" {
		p.Protocol = ProxyHTTP
	}
	w.WS.KeyPath = wsPath
	if ssl := &w.WS.SSL; len(ssl.EnabledProtocols) > 0 && ssl.Protocol > slices.Max(ssl.EnabledProtocols) {
		d.fail(wsPath+".ssl.enabledProtocols", invalid("no version allowed: ssl.protocol is %s", ssl.Protocol))
	}
	d.warnLoose(w, wsPath+".ssl.loose")
}

func (d *decoder) warnLoose(w *Webhook, path string) {
	l := w.WS.SSL.Loose
	for _, f := range []struct {
		on   bool
		key  string
		what string
	}{
		{l.AcceptAnyCertificate, "acceptAnyCertificate", "any certificate is accepted, nothing is verified"},
		{l.DisableHostnameVerification, "disableHostnameVerification", "the host name is not verified"},
		{l.DisableSNI, "disableSNI", "no SNI is sent"},
	} {
		if f.on {
			d.warn(path+"."+f.key, "webhook "+w.Name+": "+f.what)
		}
	}
}

// checkWebhookURL wants an absolute http or https URL; messages show it
// without userinfo and query, which may hold credentials.
func checkWebhookURL(s string) error {
	if s == "" {
		return errRequired
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return invalid("%s is not an absolute URL", quoteValue(RedactURL(s)))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return invalid("%s: scheme must be http or https", quoteValue(RedactURL(s)))
	}
	return nil
}

// RedactURL is how every URL is shown in logs, errors, dead-letter
// headers, `check`, `send-test` and `deadletter list`:
// scheme://host:port/**** and nothing else. Webhook URLs carry their
// credential in the path (Slack, Teams, Discord) or the query, so neither
// is ever shown; userinfo is dropped. The port is always there (the
// scheme's default when the URL has none) and "/****" always follows, so
// the form does not tell whether there was a path. A string that does not
// parse, or has no host, becomes "<invalid URL>".
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "<invalid URL>"
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPorts[strings.ToLower(u.Scheme)]
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return u.Scheme + "://" + host + "/" + redacted
}

// defaultPorts are the ports RedactURL shows for a URL that names none.
var defaultPorts = map[string]string{
	"http": "80", "https": "443", "ws": "80", "wss": "443",
	"nats": "4222", "tls": "4222", "socks5": "1080",
}

// checkNames wants unique names, also once made into NATS subject tokens.
func (d *decoder) checkNames(hooks []Webhook) {
	seen := map[string]*Webhook{}
	for i := range hooks {
		w := &hooks[i]
		if w.Name == "" {
			continue
		}
		other, dup := seen[w.Token()]
		switch {
		case w.Token() == InvalidToken:
			d.fail(w.KeyPath, invalid("webhook name %q is reserved: <deadLetter.subject>.%s keeps the entries that are not audit entries", w.Name, InvalidToken))
		case dup && other.Name == w.Name:
			d.fail(w.KeyPath, newKind(ErrDuplicate, "duplicate webhook name %q, also at %s", w.Name, other.KeyPath))
		case dup:
			d.fail(w.KeyPath, newKind(ErrDuplicate, "webhook name %q collides with %q (%s) as NATS token %q", w.Name, other.Name, other.KeyPath, w.Token()))
		default:
			seen[w.Token()] = w
		}
	}
}

// checkDeadLetterSubject keeps dead letters out of the audit stream: were
// <deadLetter.subject>.<webhook> inside nats.subject, the dead-letter
// stream could not be created (its subjects overlap) and every dead letter
// would come back as an entry.
func (d *decoder) checkDeadLetterSubject(a *Auditrelay) {
	dl := a.DeadLetter.Subject + ".>"
	if SubjectsOverlap(dl, a.NATS.Subject) {
		d.fail("auditrelay.deadLetter.subject", invalid("%s overlaps auditrelay.nats.subject %s: dead letters would be read as audit entries",
			quoteValue(a.DeadLetter.Subject), quoteValue(a.NATS.Subject)))
	}
}

// SubjectsOverlap reports whether some subject matches both NATS subject
// patterns ('*' one token, '>' the rest).
func SubjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(at) && i < len(bt); i++ {
		switch {
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] != "*" && bt[i] != "*" && at[i] != bt[i]:
			return false
		}
	}
	return len(at) == len(bt)
}

// checkThin wants fetch credentials when a webhook sends thin payloads, as
// its receiver must fetch the entries.
func (d *decoder) checkThin(cfg *Config) {
	f := cfg.Auditrelay.Admin.Fetch
	if f.Key != "" && f.Secret != "" {
		return
	}
	for _, w := range cfg.Webhooks {
		if w.Format == "thin" {
			d.fail("auditrelay.admin.fetch", newKind(ErrRequired, "key and secret required: webhook %s has format = thin", w.Name))
		}
	}
}
