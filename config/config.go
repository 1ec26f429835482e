// Package config turns a TheHive-style application.conf (HOCON) into typed,
// validated structs. It imports nothing else of auditrelay's: audit, sink and
// relay read these structs, never the HOCON.
//
// The shape of every struct mirrors the HOCON keys (camelCase, as in TheHive),
// so a key path in an error reads the same as the file.
package config

import (
	"regexp"
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
	URL           string
	Servers       []string
	Embedded      Embedded
	Subject       string
	Stream        Stream
	DurablePrefix string
	// MaxEntryBytes is the largest entry delivered; larger ones are invalid.
	MaxEntryBytes int64
	Auth          NATSAuth
	TLS           TLS
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
	CredsFile string // absolute after Load
	NkeyFile  string // absolute after Load
	Token     Secret
	User      string
	Password  Secret
}

// TLS is `auditrelay.nats.tls` or `auditrelay.ingest.tls`: the same store
// syntax as a webhook's ws.ssl.
type TLS struct {
	TrustManager StoreSet
	KeyManager   StoreSet
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
	Name string
	// KeyPath is where the webhook is defined: `webhooks.siem` or
	// `notification.webhook.endpoints[0]`. Errors about it start with it.
	KeyPath  string
	URL      string
	WS       WS
	Auth     Auth
	Headers  map[string]string
	Signing  Signing
	Filter   Filter
	Format   string // audit | slack | thin | teams | splunk | template
	Template Template
	Splunk   Splunk
	Batch    Batch
	Delivery Delivery
	Enabled  bool
	// IngestHop marks a webhook whose URL is auditrelay's own ingest
	// listener: TheHive's hop into auditrelay, never delivered to.
	IngestHop bool
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
	// FollowRedirects follows 307 and 308 (method and body kept); any
	// other 3xx is a permanent failure either way (SPEC §4).
	FollowRedirects bool
	// UserAgent is "" for auditrelay's own `auditrelay/<version>`.
	UserAgent          string
	CompressionEnabled bool
	Timeout            Timeout
	UseProxyProperties bool
	Proxy              Proxy
	SSL                SSL
}

// Timeout is `ws.timeout`.
type Timeout struct {
	Connection time.Duration
	Idle       time.Duration
	Request    time.Duration
}

// Proxy is `ws.proxy`; Host "" means no proxy block.
type Proxy struct {
	Host          string
	Port          int
	Protocol      string // http | https | socks5
	User          string
	Password      Secret
	NonProxyHosts []string
}

// SSL is `ws.ssl`.
type SSL struct {
	TrustManager        StoreSet
	KeyManager          StoreSet
	Protocol            string   // minimum version: TLSv1.2 | TLSv1.3
	EnabledProtocols    []string // allowed versions
	EnabledCipherSuites []string // IANA names
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
	Path string
	// Data is inline PEM text.
	Data     string
	Password Secret
	// HasPassword tells an absent password (read without an integrity check,
	// as Java does) from an empty one.
	HasPassword bool
	// KeyPath is where the store is defined, e.g.
	// `webhooks.siem.ws.ssl.trustManager.stores[0]`; errors name it.
	KeyPath string
}

// Loose is `ws.ssl.loose`: each flag weakens verification.
type Loose struct {
	AcceptAnyCertificate        bool
	DisableHostnameVerification bool
	DisableSNI                  bool
}

// Auth is TheHive 4's endpoint auth: none | basic | bearer | key.
type Auth struct {
	Type     string
	Username string
	Password Secret
	Key      Secret
}

// Signing is Standard Webhooks signing. Several secrets (rotation) each sign.
type Signing struct {
	Secrets []Secret // each "whsec_" + base64
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
	Expr string
	// IncludedOrganisations and ExcludedOrganisations are TheHive 4's
	// includedTheHiveOrganisations / excludedTheHiveOrganisations; "*" is all.
	IncludedOrganisations []string
	ExcludedOrganisations []string
}

// Template is `template`, the body of format = template.
type Template struct {
	// File is absolute after Load; Text is its contents as loaded, which
	// parsed (ParseTemplate). A reload reads the file again.
	File        string
	Text        string
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
	OrderBy     string // rootId | objectId | none
	Retry       Retry
}

// Start is where a new webhook begins in the stream.
type Start struct {
	Mode string    // new | all | time
	Time time.Time // when Mode is "time"
}

// Retry is `delivery.retry`.
type Retry struct {
	MaxAttempts    int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	MaxAge         time.Duration // from the entry's stream time
}
