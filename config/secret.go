package config

// Secret is a password, token, key or signing secret. It prints as "****" in
// every format (fmt, JSON, text), so neither `check`, a log line nor an error
// can show it; string(s) reads the value where it is used.
type Secret string

const redacted = "****"

// String returns "****", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from showing the value.
func (s Secret) GoString() string { return `"` + s.String() + `"` }

// MarshalText keeps encoding/json and slog from showing the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
