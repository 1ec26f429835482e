package config

import (
	"net"
	"net/url"
	"strings"
)

// Ingest is `auditrelay.ingest` (SPEC §6): the HTTP listener that TheHive's
// own webhooks post their audit trail to, stored in the audit stream before
// the answer.
type Ingest struct {
	Enabled bool
	Listen  string
	// Subject is where an entry goes, as <Subject>.<objectType>; it has no
	// wildcard and `<Subject>.x` matches auditrelay.nats.subject.
	Subject string
	// Auth is what the sender must send: the same block as a TheHive 4
	// endpoint's auth (none | basic | bearer | key).
	Auth Auth
	// TLS serves HTTPS with the KeyManager's certificate; with a
	// TrustManager, clients must present a certificate it trusts.
	TLS TLS `hocon:"tls,omitempty"`
	// MaxEntryBytes is the largest body stored; it defaults to
	// auditrelay.nats.maxEntryBytes.
	MaxEntryBytes int64 `hocon:"maxEntryBytes,size"`
}

// HTTPS reports whether the listener serves TLS.
func (i *Ingest) HTTPS() bool { return len(i.TLS.KeyManager.Stores) > 0 }

// ingest reads `auditrelay.ingest`. What depends on other sections
// (subject, listen) is checked by checkIngest once the whole section is read.
func (d *decoder) ingest(n *node, in *Ingest) {
	n.boolean("enabled", &in.Enabled)
	if n.str("listen", &in.Listen) {
		checkWith(n, "listen", in.Listen, checkListen)
	}
	if n.str("subject", &in.Subject) {
		checkWith(n, "subject", in.Subject, checkPublishSubject)
	}
	if c := n.child("auth"); c != nil {
		d.auth(c, &in.Auth)
	}
	if t := n.child("tls"); t != nil {
		d.storeSet(t, "trustManager", &in.TLS.TrustManager)
		d.storeSet(t, "keyManager", &in.TLS.KeyManager)
		_, trust := t.obj["trustManager"]
		_, key := t.obj["keyManager"]
		if trust && !key {
			t.fail("keyManager", newKind(ErrRequired, "required with trustManager: client certificates need HTTPS"))
		}
		t.finish()
	}
	if n.size("maxEntryBytes", &in.MaxEntryBytes) && in.MaxEntryBytes <= 0 {
		n.fail("maxEntryBytes", invalid("must be more than 0"))
	}
	n.finish()
}

// checkIngest checks what ties the ingest to the rest of the section: its
// entries must land in the audit stream, and its address must be its own.
func (d *decoder) checkIngest(a *Auditrelay) {
	in := &a.Ingest
	if !in.Enabled {
		return
	}
	const path = "auditrelay.ingest"
	if checkPublishSubject(in.Subject) == nil && !SubjectMatches(a.NATS.Subject, in.Subject+".x") {
		d.fail(path+".subject", invalid("%s is not under auditrelay.nats.subject %s: entries would not reach the audit stream",
			quoteValue(in.Subject+".<objectType>"), quoteValue(a.NATS.Subject)))
	}
	if sameAddress(in.Listen, a.Admin.Listen) {
		d.fail(path+".listen", invalid("%s is also auditrelay.admin.listen", quoteValue(in.Listen)))
	}
	if a.NATS.Embedded.Enabled && sameAddress(in.Listen, a.NATS.Embedded.Listen) {
		d.fail(path+".listen", invalid("%s is also auditrelay.nats.embedded.listen", quoteValue(in.Listen)))
	}
}

// markIngestHops flags the webhooks whose URL is the ingest listener: the
// usual one-file set-up holds TheHive's own webhook pointing at it, which
// is the hop into auditrelay, not a target (delivering to it would loop).
func (d *decoder) markIngestHops(cfg *Config) {
	in := &cfg.Auditrelay.Ingest
	if !in.Enabled {
		return
	}
	for i := range cfg.Webhooks {
		w := &cfg.Webhooks[i]
		if IsIngestURL(in.Listen, w.URL) {
			w.IngestHop = true
			d.warn(w.KeyPath+".url", "webhook "+w.Name+" is auditrelay's own ingest listener (auditrelay.ingest.listen): "+
				"TheHive's hop into auditrelay, not delivered to")
		}
	}
}

// IsIngestURL reports whether rawURL reaches the listener at listen: the
// same port, and the same host or two loopback names (127.0.0.1, localhost
// and [::1] alike; a listener on all interfaces counts as loopback too). It
// resolves nothing. Port 0 (chosen at start) matches no URL.
func IsIngestURL(listen, rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return sameAddress(listen, net.JoinHostPort(u.Hostname(), port))
}

// sameAddress reports whether two host:port addresses name the same
// listener, as IsIngestURL says.
func sameAddress(a, b string) bool {
	ah, ap, errA := net.SplitHostPort(a)
	bh, bp, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || ap != bp || ap == "0" {
		return false
	}
	if strings.EqualFold(ah, bh) {
		return true
	}
	return localOrAny(ah) && localOrAny(bh)
}

// localOrAny is a loopback host or the unspecified one (all interfaces,
// loopback included).
func localOrAny(h string) bool {
	if h == "" || strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// SubjectMatches reports whether subject (no wildcards) is matched by
// pattern, with NATS's `*` (one token) and `>` (one or more, last).
func SubjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, t := range p {
		switch {
		case t == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case t != "*" && t != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}
