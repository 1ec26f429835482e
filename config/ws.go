package config

import (
	"slices"
	"strings"

	"github.com/gurkankaymak/hocon"
)

// applyWS reads the ws object of n over w: only the keys present change, so
// reading the layers from the lowest (play.ws) to the highest (the
// webhook's own) layers them key by key. A list is one key: a higher layer
// replaces it.
func (d *decoder) applyWS(n *node, w *WS) {
	n.boolean("followRedirects", &w.FollowRedirects)
	n.str("useragent", &w.UserAgent)
	n.boolean("compressionEnabled", &w.CompressionEnabled)
	if t := n.child("timeout"); t != nil {
		t.positiveDuration("connection", &w.Timeout.Connection)
		t.positiveDuration("idle", &w.Timeout.Idle)
		t.positiveDuration("request", &w.Timeout.Request)
		t.finish()
	}
	n.boolean("useProxyProperties", &w.UseProxyProperties)
	if p := n.child("proxy"); p != nil {
		d.proxy(p, &w.Proxy)
	}
	if s := n.child("ssl"); s != nil {
		d.ssl(s, &w.SSL)
	}
	n.unsupported("ahc", "AsyncHttpClient settings")
	n.finish()
}

func (d *decoder) proxy(n *node, p *Proxy) {
	n.str("host", &p.Host)
	if n.integer("port", &p.Port) && (p.Port < 1 || p.Port > 65535) {
		n.fail("port", invalid("must be 1 to 65535, got %d", p.Port))
	}
	oneOf(n, "protocol", &p.Protocol, ProxyHTTP, ProxyHTTPS, ProxySOCKS5)
	n.str("user", &p.User)
	n.secret("password", &p.Password)
	n.strings("nonProxyHosts", &p.NonProxyHosts)
	n.unsupported("ntlmDomain", "NTLM proxy authentication")
	n.unsupported("encoding", "proxy credentials are sent as UTF-8")
	n.finish()
}

func (d *decoder) ssl(n *node, s *SSL) {
	d.storeSet(n, "trustManager", &s.TrustManager)
	d.storeSet(n, "keyManager", &s.KeyManager)
	var min string
	if n.str("protocol", &min) {
		if v, err := parseTLSVersion(min); err != nil {
			d.versionProblem(n, n.at("protocol"), err)
		} else {
			s.Protocol = v
		}
	}
	var versions, suites []string
	if n.strings("enabledProtocols", &versions) {
		s.EnabledProtocols = d.tlsVersions(n, versions)
	}
	if n.strings("enabledCipherSuites", &suites) {
		s.EnabledCipherSuites = d.cipherSuites(n, suites)
	}
	if l := n.child("loose"); l != nil {
		l.boolean("acceptAnyCertificate", &s.Loose.AcceptAnyCertificate)
		l.boolean("disableHostnameVerification", &s.Loose.DisableHostnameVerification)
		l.boolean("disableSNI", &s.Loose.DisableSNI)
		l.finish()
	}
	d.sslDebug(n, &s.Debug)
	n.finish()
}

// sslDebug takes `debug = true` or Play's object of flags (`debug { all =
// true }`), on when any flag is.
func (d *decoder) sslDebug(n *node, dst *bool) {
	obj, ok := n.obj["debug"].(hocon.Object)
	if !ok {
		n.boolean("debug", dst)
		return
	}
	n.known = append(n.known, "debug")
	*dst = false
	for _, v := range obj {
		if b, ok := v.(hocon.Boolean); ok && bool(b) {
			*dst = true
		}
	}
}

// versionProblem reports an unusable TLS version at path; play.ws belongs
// to the application, so there it only warns and the value is ignored.
func (d *decoder) versionProblem(n *node, path string, err error) {
	if n.lenient {
		d.warn(path, err.Error()+", ignored")
		return
	}
	d.fail(path, err)
}

// tlsVersions checks enabledProtocols and keeps the usable ones.
func (d *decoder) tlsVersions(n *node, vs []string) []TLSVersion {
	var keep []TLSVersion
	for i, s := range vs {
		v, err := parseTLSVersion(s)
		if err != nil {
			d.versionProblem(n, n.at("enabledProtocols")+"["+itoa(i)+"]", err)
			continue
		}
		keep = append(keep, v)
	}
	return keep
}

// cipherSuites reads enabledCipherSuites: Go's suites by IANA name, an
// insecure one with a warning. TLS 1.3 suites are accepted and have no
// effect: Go does not let them be chosen.
func (d *decoder) cipherSuites(n *node, names []string) []CipherSuite {
	var ids []CipherSuite
	for i, name := range names {
		path := n.at("enabledCipherSuites") + "[" + itoa(i) + "]"
		id, insecure, ok := lookupCipherSuite(name)
		switch {
		case !ok:
			d.fail(path, invalid("unknown cipher suite %s", quoteValue(name)))
			continue
		case insecure:
			d.warn(path, "insecure cipher suite "+name)
		}
		ids = append(ids, id)
	}
	return ids
}

// storeSet reads `<key>.stores`; the list replaces a lower layer's.
func (d *decoder) storeSet(n *node, key string, set *StoreSet) {
	c := n.child(key)
	if c == nil {
		return
	}
	var stores []Store
	if c.objects("stores", func(_ int, s *node) {
		// A store with a problem of its own is reported here and left out,
		// so that what reads the stores (check, start) meets it once.
		if before := len(d.errs); true {
			st := d.store(s)
			if len(d.errs) == before {
				stores = append(stores, st)
			}
		}
	}) {
		set.Stores = stores
	}
	c.unsupported("algorithm", "the key manager algorithm is Go's")
	c.finish()
}

// store reads `{type, path | data, password}`. The file is only checked to
// exist: the sink parses it. The type defaults as in Play (JKS), except that
// inline data can only be PEM.
func (d *decoder) store(n *node) Store {
	s := Store{KeyPath: n.path}
	hasType := n.str("type", &s.Type)
	s.Type = strings.ToUpper(s.Type)
	if hasType && !slices.Contains([]string{"JKS", "PKCS12", "PEM"}, s.Type) {
		n.fail("type", invalid("%s is not one of JKS, PKCS12, PEM", quoteValue(s.Type)))
	}
	hasPath, hasData := n.str("path", &s.Path), n.str("data", &s.Data)
	switch {
	case hasType:
	case hasData:
		s.Type = "PEM"
	default:
		s.Type = "JKS"
	}
	switch {
	case hasPath && hasData:
		d.fail(n.path, exclusive("path", "data"))
	case !hasPath && !hasData:
		d.fail(n.path, newKind(ErrRequired, "one of path & data required"))
	case hasPath:
		s.Path = d.file(n.at("path"), s.Path)
	}
	s.HasPassword = n.secret("password", &s.Password)
	n.finish()
	return s
}
