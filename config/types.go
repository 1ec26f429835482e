package config

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// The typed values config hands out: each word of the file is checked once,
// here, and the rest of auditrelay switches on these constants, never on
// the words (prometheus/common's TLSVersion and ProxyConfig do the same).

// OrderBy is `delivery.orderBy`: the entries of a webhook with the same key
// go out in stream order.
type OrderBy string

// The orderBy values.
const (
	OrderByRootID   OrderBy = "rootId"
	OrderByObjectID OrderBy = "objectId"
	OrderByNone     OrderBy = "none"
)

// Ordered reports whether entries are ordered by a key at all.
func (o OrderBy) Ordered() bool { return o != OrderByNone }

// Format is a webhook's `format`: what its request body is.
type Format string

// The formats (SPEC §4).
const (
	FormatAudit    Format = "audit"
	FormatSlack    Format = "slack"
	FormatThin     Format = "thin"
	FormatTeams    Format = "teams"
	FormatSplunk   Format = "splunk"
	FormatTemplate Format = "template"
)

// Formats lists every format, in the order the docs give them.
var Formats = []Format{FormatAudit, FormatSlack, FormatThin, FormatTeams, FormatSplunk, FormatTemplate}

// AuthType is TheHive 4's `auth.type`.
type AuthType string

// The auth types.
const (
	AuthNone   AuthType = "none"
	AuthBasic  AuthType = "basic"
	AuthBearer AuthType = "bearer"
	AuthKey    AuthType = "key"
)

// StartMode is how `delivery.start` places a new webhook in the stream.
type StartMode string

// The start modes: `new`, `all`, or an RFC 3339 time.
const (
	StartNew  StartMode = "new"
	StartAll  StartMode = "all"
	StartTime StartMode = "time"
)

// String is the start as written in the file: new, all, or the time.
func (s Start) String() string {
	if s.Mode == StartTime {
		return s.Time.UTC().Format("2006-01-02T15:04:05Z07:00")
	}
	return string(s.Mode)
}

// MarshalText writes the start as String does, for `check`.
func (s Start) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ProxyProtocol is `ws.proxy.protocol`.
type ProxyProtocol string

// The proxy protocols.
const (
	ProxyHTTP   ProxyProtocol = "http"
	ProxyHTTPS  ProxyProtocol = "https"
	ProxySOCKS5 ProxyProtocol = "socks5"
)

// TLSVersion is a TLS version written as Java names it (`TLSv1.2`).
type TLSVersion uint16

var tlsVersionNames = map[string]TLSVersion{"TLSv1.2": tls.VersionTLS12, "TLSv1.3": tls.VersionTLS13}

// String is the Java name of the version.
func (v TLSVersion) String() string {
	for name, id := range tlsVersionNames {
		if id == v {
			return name
		}
	}
	return fmt.Sprintf("TLS 0x%04x", uint16(v))
}

// MarshalText writes the Java name, for `check`.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

func parseTLSVersion(s string) (TLSVersion, error) {
	if v, ok := tlsVersionNames[s]; ok {
		return v, nil
	}
	switch s {
	case "TLSv1", "TLSv1.1", "SSLv3":
		return 0, unsupported(s + " is insecure; use TLSv1.2 or TLSv1.3")
	}
	return 0, invalid("%s is not one of TLSv1.2, TLSv1.3", quoteValue(s))
}

// CipherSuite is a TLS 1.2 cipher suite, written by its IANA name.
type CipherSuite uint16

// String is the suite's IANA name.
func (c CipherSuite) String() string { return tls.CipherSuiteName(uint16(c)) }

// MarshalText writes the IANA name, for `check`.
func (c CipherSuite) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// lookupCipherSuite finds a suite Go knows by IANA name, and whether it is
// one of the insecure ones.
func lookupCipherSuite(name string) (id CipherSuite, insecure, ok bool) {
	name = strings.TrimSpace(name)
	for _, s := range tls.CipherSuites() {
		if s.Name == name {
			return CipherSuite(s.ID), false, true
		}
	}
	for _, s := range tls.InsecureCipherSuites() {
		if s.Name == name {
			return CipherSuite(s.ID), true, true
		}
	}
	return 0, false, false
}

// The operations, as TheHive 3 writes them; TheHive 4 and 5 write create,
// update and delete, which are the same.
const (
	OpCreation = "Creation"
	OpUpdate   = "Update"
	OpDelete   = "Delete"
)

// NormaliseOperation maps any case of creation/create, update and delete to
// Creation, Update or Delete; anything else to "". Entries and filters are
// read with it alike.
func NormaliseOperation(op string) string {
	switch strings.ToLower(op) {
	case "creation", "create":
		return OpCreation
	case "update":
		return OpUpdate
	case "delete":
		return OpDelete
	}
	return ""
}
