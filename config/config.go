// Package config turns a TheHive-style application.conf (HOCON) into typed,
// validated structs. It imports nothing else of auditrelay's: audit, sink and
// relay read these structs, never the HOCON.
//
// The shape of every struct mirrors the HOCON keys (camelCase, as in TheHive),
// so a key path in an error reads the same as the file.
package config

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is a loaded, validated configuration.
type Config struct {
	Auditrelay Auditrelay
	// Webhooks holds every webhook of the file, sorted by name: the children of
	// TheHive 3's top-level `webhooks` that have a `url`, and the entries of
	// TheHive 4's `notification.webhook.endpoints`.
	Webhooks []Webhook
	// File is the absolute path of the top-level config file ("" when parsed
	// from memory); relative paths resolve against its directory.
	File string
	// Warnings are problems that do not stop auditrelay: deprecated keys,
	// weakened TLS verification, play.ws keys auditrelay does not honour.
	Warnings []string
}

// Webhook returns the webhook named name, or nil.
func (c *Config) Webhook(name string) *Webhook {
	for i := range c.Webhooks {
		if c.Webhooks[i].Name == name {
			return &c.Webhooks[i]
		}
	}
	return nil
}

// Auditrelay is the `auditrelay { … }` section (SPEC §2.4).
type Auditrelay struct {
	NATS            NATS
	DeadLetter      DeadLetter
	Admin           Admin
	Ingest          Ingest
	Log             Log
	ShutdownTimeout time.Duration
}

// NATS is `auditrelay.nats`.
type NATS struct {
	URL           string   `hocon:"url,url"`
	Servers       []string `hocon:"servers,url,omitempty"`
	Embedded      Embedded
	Subject       string
	Stream        Stream
	DurablePrefix string
	// MaxEntryBytes is the largest entry delivered; larger ones are invalid.
	MaxEntryBytes int64    `hocon:"maxEntryBytes,size"`
	Auth          NATSAuth `hocon:"auth,omitempty"`
	TLS           TLS      `hocon:"tls,omitempty"`
}

// Embedded is `auditrelay.nats.embedded`: an in-process NATS server.
type Embedded struct {
	Enabled  bool
	Listen   string
	StoreDir string // absolute after Load
}

// Stream is `auditrelay.nats.stream`.
type Stream struct {
	Name     string
	Create   bool
	MaxAge   time.Duration
	Replicas int
}

// NATSAuth is `auditrelay.nats.auth`; at most one method is set.
type NATSAuth struct {
	CredsFile string `hocon:"credsFile,omitempty"` // absolute after Load
	NkeyFile  string `hocon:"nkeyFile,omitempty"`  // absolute after Load
	Token     Secret
	User      string `hocon:"user,omitempty"`
	Password  Secret
}

// TLS is `auditrelay.nats.tls` or `auditrelay.ingest.tls`: the same store
// syntax as a webhook's ws.ssl.
type TLS struct {
	TrustManager StoreSet `hocon:"trustManager,omitempty"`
	KeyManager   StoreSet `hocon:"keyManager,omitempty"`
}

// DeadLetter is `auditrelay.deadLetter`.
type DeadLetter struct {
	Subject string
}

// Admin is `auditrelay.admin`: metrics, health and the event-fetch API.
type Admin struct {
	Listen string
	Fetch  Fetch
}

// Fetch holds the credentials of GET /webhooks/<name>/events/<id>.
type Fetch struct {
	Key    Secret
	Secret Secret
}

// Log is `auditrelay.log`.
type Log struct {
	Level  string // debug | info | warn | error
	Format string // json | text
}

// Webhook is one named endpoint, from either TheHive 3 or TheHive 4 syntax,
// with its HTTP client settings already layered (own ws, webhooks.ws,
// play.ws, defaults).
type Webhook struct {
	Name string `hocon:"-"`
	// KeyPath is where the webhook is defined: `webhooks.siem` or
	// `notification.webhook.endpoints[0]`. Errors about it start with it.
	KeyPath  string `hocon:"-"`
	URL      string `hocon:"url,url"`
	Enabled  bool
	Format   Format
	Auth     Auth
	Headers  map[string]string `hocon:"headers,masked"`
	Signing  Signing
	Filter   Filter
	Template Template
	Splunk   Splunk
	Batch    Batch
	Delivery Delivery
	WS       WS
	// IngestHop marks a webhook whose URL is auditrelay's own ingest
	// listener: TheHive's hop into auditrelay, never delivered to.
	IngestHop bool `hocon:"-"`
}

// Upper bounds of a webhook's concurrency: every request in flight holds a
// connection and its batch in memory.
const (
	MaxInFlight     = 1024
	MaxBatchEntries = 1000
)

// InvalidToken is the subject token, under the dead-letter subject, of the
// messages that are not audit entries; no webhook may take it.
const InvalidToken = "_invalid"

// Token is the webhook's name as it may appear in a NATS subject or consumer
// name.
func (w *Webhook) Token() string { return SubjectToken(w.Name) }

var subjectUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// SubjectToken replaces every character outside [A-Za-z0-9_-] with '_'
// (SPEC §2.1), so a webhook name can be a NATS subject token or part of a
// consumer name.
func SubjectToken(name string) string { return subjectUnsafe.ReplaceAllString(name, "_") }

// WS is the HTTP client of a webhook (`ws` in TheHive 3, `wsConfig` in 4).
type WS struct {
	// KeyPath is where the webhook's own block is, `webhooks.siem.ws` or
	// `notification.webhook.endpoints[0].wsConfig` (whether or not the
	// file has one): errors about its settings start with it.
	KeyPath string `hocon:"-"`
	// FollowRedirects follows 307 and 308 (method and body kept); any
	// other 3xx is a permanent failure either way (SPEC §4).
	FollowRedirects bool
	// UserAgent is "" for auditrelay's own `auditrelay/<version>`.
	UserAgent          string `hocon:"useragent"`
	CompressionEnabled bool
	Timeout            Timeout
	UseProxyProperties bool
	Proxy              Proxy `hocon:"proxy,omitempty"`
	SSL                SSL
}

// Timeout is `ws.timeout`.
type Timeout struct {
	Connection time.Duration
	Idle       time.Duration
	Request    time.Duration
}

// Proxy is `ws.proxy`; Host "" means no proxy block. Host and Port are
// both set when one is, and Protocol is set (http by default).
type Proxy struct {
	Host          string
	Port          int
	Protocol      ProxyProtocol
	User          string
	Password      Secret
	NonProxyHosts []string
}

// URL is the proxy block as a URL, nil when there is none; net/http sends
// its user and password as Proxy-Authorization Basic (http, https) or as
// SOCKS5 user/password.
func (p Proxy) URL() *url.URL {
	if p.Host == "" {
		return nil
	}
	u := &url.URL{Scheme: string(p.Protocol), Host: net.JoinHostPort(p.Host, strconv.Itoa(p.Port))}
	switch {
	case p.User != "" && p.Password != "":
		u.User = url.UserPassword(p.User, string(p.Password))
	case p.User != "":
		u.User = url.User(p.User)
	}
	return u
}

// SSL is `ws.ssl`.
type SSL struct {
	TrustManager        StoreSet      `hocon:"trustManager,omitempty"`
	KeyManager          StoreSet      `hocon:"keyManager,omitempty"`
	Protocol            TLSVersion    // the minimum version: TLS 1.2 unless set
	EnabledProtocols    []TLSVersion  `hocon:"enabledProtocols,omitempty"`    // none: from Protocol up
	EnabledCipherSuites []CipherSuite `hocon:"enabledCipherSuites,omitempty"` // TLS 1.2; none: Go's defaults
	Loose               Loose
	Debug               bool
}

// StoreSet is `trustManager` or `keyManager`.
type StoreSet struct {
	Stores []Store
}

// Store is one trust or key store.
type Store struct {
	Type string // JKS | PKCS12 | PEM, upper-cased after Load
	// Path is absolute after Load; "" when Data is set.
	Path string `hocon:"path,omitempty"`
	// Data is inline PEM text.
	Data     string `hocon:"data,pem,omitempty"`
	Password Secret
	// HasPassword tells an absent password (read without an integrity check,
	// as Java does) from an empty one.
	HasPassword bool `hocon:"-"`
	// KeyPath is where the store is defined, e.g.
	// `webhooks.siem.ws.ssl.trustManager.stores[0]`; errors name it.
	KeyPath string `hocon:"-"`
}

// Loose is `ws.ssl.loose`: each flag weakens verification.
type Loose struct {
	AcceptAnyCertificate        bool
	DisableHostnameVerification bool
	DisableSNI                  bool
}

// Flags names the loose flags that are set, for logs and `check`.
func (l Loose) Flags() []string {
	var out []string
	if l.AcceptAnyCertificate {
		out = append(out, "acceptAnyCertificate")
	}
	if l.DisableHostnameVerification {
		out = append(out, "disableHostnameVerification")
	}
	if l.DisableSNI {
		out = append(out, "disableSNI")
	}
	return out
}

// Auth is TheHive 4's endpoint auth: none | basic | bearer | key.
type Auth struct {
	Type     AuthType
	Username string `hocon:"username,omitempty"`
	Password Secret
	Key      Secret
}

// Signing is Standard Webhooks signing. Several secrets (rotation) each sign.
type Signing struct {
	Secrets []Secret `hocon:"secret,omitempty"` // each "whsec_" + base64
}

// Filter selects the entries a webhook gets; empty lists mean all.
type Filter struct {
	Operations  []string // normalised: Creation | Update | Delete
	ObjectTypes []string // exact, or a prefix ending in '*' (`case_*`)
	// ExcludeObjectTypes are dropped even when ObjectTypes lets them through.
	ExcludeObjectTypes []string
	BaseOnly           bool
	// Expr is an expr-lang boolean over the decoded entry, "" for none;
	// it compiled (CompileExpr) when the file was loaded.
	Expr string `hocon:"expr,omitempty"`
	// IncludedOrganisations and ExcludedOrganisations are TheHive 4's
	// includedTheHiveOrganisations / excludedTheHiveOrganisations; "*" is all.
	IncludedOrganisations []string `hocon:"includedTheHiveOrganisations"`
	ExcludedOrganisations []string `hocon:"excludedTheHiveOrganisations"`
}

// Template is `template`, the body of format = template.
type Template struct {
	// File is absolute after Load; Text is its contents as loaded, which
	// parsed (ParseTemplate). A reload reads the file again.
	File        string
	Text        string `hocon:"-"`
	ContentType string
}

// IsJSON tells whether the template's content type is JSON, so that what it
// yields must be JSON.
func (t *Template) IsJSON() bool {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(t.ContentType, ";", 2)[0]))
	return ct == "application/json" || strings.HasSuffix(ct, "+json")
}

// IsNDJSON tells whether the content type is newline-delimited JSON
// (Elasticsearch's _bulk): each line that is not blank must be JSON.
func (t *Template) IsNDJSON() bool {
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(t.ContentType, ";", 2)[0]))
	return ct == "application/x-ndjson" || ct == "application/ndjson"
}

// Splunk is `splunk`, the HEC event metadata of format = splunk; empty
// values are left out of each event.
type Splunk struct {
	Source     string
	Sourcetype string
	Index      string
	Host       string
}

// Batch is `batch`: MaxEntries > 1 sends a JSON array per request.
type Batch struct {
	MaxEntries int
	MaxWait    time.Duration
}

// Delivery is `delivery`.
type Delivery struct {
	Start       Start
	MaxInFlight int
	OrderBy     OrderBy
	Retry       Retry
}

// Start is where a new webhook begins in the stream.
type Start struct {
	Mode StartMode
	Time time.Time // when Mode is StartTime
}

// Retry is `delivery.retry`.
type Retry struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	MaxAge         time.Duration // from the entry's stream time
}
