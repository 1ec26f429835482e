package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// auditrelay reads `auditrelay { … }` (SPEC §2.4) over the defaults in a.
func (d *decoder) auditrelay(n *node, a *Auditrelay) {
	if c := n.child("nats"); c != nil {
		d.nats(c, &a.NATS)
	}
	if c := n.child("deadLetter"); c != nil {
		if c.str("subject", &a.DeadLetter.Subject) {
			checkWith(c, "subject", a.DeadLetter.Subject, checkPublishSubject)
		}
		c.finish()
	}
	if c := n.child("admin"); c != nil {
		d.admin(c, &a.Admin)
	}
	if c := n.child("log"); c != nil {
		oneOf(c, "level", &a.Log.Level, "debug", "info", "warn", "error")
		oneOf(c, "format", &a.Log.Format, "json", "text")
		c.finish()
	}
	n.positiveDuration("shutdownTimeout", &a.ShutdownTimeout)
	a.Ingest.MaxEntryBytes = a.NATS.MaxEntryBytes // ${auditrelay.nats.maxEntryBytes} unless set
	if c := n.child("ingest"); c != nil {
		d.ingest(c, &a.Ingest)
	}
	d.checkIngest(a)
	n.finish()
}

// checkWith reports check(value) at key, when it fails.
func checkWith(n *node, key, value string, check func(string) error) {
	if err := check(value); err != nil {
		n.fail(key, err)
	}
}

func (d *decoder) admin(n *node, a *Admin) {
	if n.str("listen", &a.Listen) {
		checkWith(n, "listen", a.Listen, checkListen)
	}
	if c := n.child("fetch"); c != nil {
		c.secret("key", &a.Fetch.Key)
		c.secret("secret", &a.Fetch.Secret)
		requireBoth(c, "key", a.Fetch.Key != "", "secret", a.Fetch.Secret != "")
		c.finish()
	}
	n.finish()
}

func (d *decoder) nats(n *node, c *NATS) {
	hasURL := n.str("url", &c.URL)
	if n.strings("servers", &c.Servers) {
		if hasURL {
			n.fail("servers", exclusive("url", "servers"))
		}
		if !hasURL {
			c.URL = "" // servers replace the default url
		}
		for i, s := range c.Servers {
			checkWith(n, "servers["+strconv.Itoa(i)+"]", s, checkNATSURL)
		}
	}
	if hasURL {
		checkWith(n, "url", c.URL, checkNATSURL)
	}
	if e := n.child("embedded"); e != nil {
		d.embedded(e, &c.Embedded)
	}
	if n.str("subject", &c.Subject) {
		checkWith(n, "subject", c.Subject, checkSubject)
	}
	if s := n.child("stream"); s != nil {
		d.stream(s, &c.Stream)
	}
	if n.str("durablePrefix", &c.DurablePrefix) {
		checkWith(n, "durablePrefix", c.DurablePrefix, checkName)
	}
	if n.size("maxEntryBytes", &c.MaxEntryBytes) && c.MaxEntryBytes <= 0 {
		n.fail("maxEntryBytes", invalid("must be more than 0"))
	}
	if a := n.child("auth"); a != nil {
		d.natsAuth(a, &c.Auth)
	}
	if t := n.child("tls"); t != nil {
		d.storeSet(t, "trustManager", &c.TLS.TrustManager)
		d.storeSet(t, "keyManager", &c.TLS.KeyManager)
		t.finish()
	}
	n.finish()
}

func (d *decoder) embedded(n *node, e *Embedded) {
	n.boolean("enabled", &e.Enabled)
	if n.str("listen", &e.Listen) {
		checkWith(n, "listen", e.Listen, checkListen)
	}
	n.str("storeDir", &e.StoreDir)
	n.finish()
}

func (d *decoder) stream(n *node, s *Stream) {
	if n.str("name", &s.Name) {
		checkWith(n, "name", s.Name, checkName)
	}
	n.boolean("create", &s.Create)
	if n.duration("maxAge", &s.MaxAge) && s.MaxAge < 0 {
		n.fail("maxAge", invalid("must not be negative (0 keeps entries forever)"))
	}
	if n.integer("replicas", &s.Replicas) && (s.Replicas < 1 || s.Replicas > 5) {
		n.fail("replicas", invalid("must be 1 to 5, got %d", s.Replicas))
	}
	n.finish()
}

func (d *decoder) natsAuth(n *node, a *NATSAuth) {
	var set []string
	if n.str("credsFile", &a.CredsFile) {
		a.CredsFile = d.file(n.at("credsFile"), a.CredsFile)
		set = append(set, "credsFile")
	}
	if n.str("nkeyFile", &a.NkeyFile) {
		a.NkeyFile = d.file(n.at("nkeyFile"), a.NkeyFile)
		set = append(set, "nkeyFile")
	}
	if n.secret("token", &a.Token) {
		set = append(set, "token")
	}
	hasUser, hasPassword := n.str("user", &a.User), n.secret("password", &a.Password)
	if hasUser || hasPassword {
		set = append(set, "user")
		requireBoth(n, "user", hasUser, "password", hasPassword)
	}
	if len(set) > 1 {
		n.d.fail(n.path, exclusive(set[0], set[1]))
	}
	n.finish()
}

// requireBoth reports the missing one of two keys that go together.
func requireBoth(n *node, a string, hasA bool, b string, hasB bool) {
	switch {
	case hasA && !hasB:
		n.fail(b, newKind(ErrRequired, "required with %s", a))
	case hasB && !hasA:
		n.fail(a, newKind(ErrRequired, "required with %s", b))
	}
}

// checkNATSURL accepts nats://, tls://, ws:// and wss:// URLs with a host.
func checkNATSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return invalid("want a URL such as nats://host:4222, got %s", quoteValue(RedactURL(s)))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
		return nil
	}
	return invalid("scheme %q is not one of nats, tls, ws, wss", u.Scheme)
}

// checkListen accepts host:port with a numeric port; it resolves nothing.
func checkListen(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return invalid("want host:port, got %s", quoteValue(s))
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return invalid("port %s is not a number from 0 to 65535", quoteValue(port))
	}
	return nil
}

// checkName accepts a JetStream stream or consumer name.
func checkName(s string) error {
	if s == "" {
		return errRequired
	}
	if strings.ContainsAny(s, " \t\r\n.*>/\\") {
		return invalid("%s must not contain spaces, '.', '*', '>', '/' or '\\'", quoteValue(s))
	}
	return nil
}

// checkSubject accepts a NATS subject, wildcards included.
func checkSubject(s string) error {
	if s == "" {
		return errRequired
	}
	toks := strings.Split(s, ".")
	for i, t := range toks {
		if t == "" || strings.ContainsAny(t, " \t\r\n") {
			return invalid("%s is not a valid subject: empty token or white space", quoteValue(s))
		}
		if t == ">" && i != len(toks)-1 {
			return invalid("%s is not a valid subject: '>' must be last", quoteValue(s))
		}
	}
	return nil
}

// checkPublishSubject accepts a subject without wildcards: auditrelay
// publishes under it.
func checkPublishSubject(s string) error {
	if err := checkSubject(s); err != nil {
		return err
	}
	for _, t := range strings.Split(s, ".") {
		if t == "*" || t == ">" {
			return invalid("%s must not contain wildcards", quoteValue(s))
		}
	}
	return nil
}
