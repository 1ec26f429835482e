// Package tlstest finds the TLS fixtures of tlsconf/testdata for the tests
// of the packages that use them (sink, relay, ingest, cmd/auditrelay). It is
// test support only.
package tlstest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/auditrelay/auditrelay/config"
)

// Password is the password of every store of tlsconf/testdata.
const Password = "changeit"

// Path is the absolute path of a file of tlsconf/testdata.
func Path(t testing.TB, name string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("tlstest: no caller information")
	}
	return filepath.Join(filepath.Dir(here), "..", "..", "tlsconf", "testdata", name)
}

// Trust is a trust store of tlsconf/testdata with the test password, at a
// webhook's first trust store key path.
func Trust(t testing.TB, typ, name string) config.Store {
	return config.Store{Type: typ, Path: Path(t, name), Password: Password, HasPassword: true,
		KeyPath: "webhooks.siem.ws.ssl.trustManager.stores[0]"}
}

// Keys is Trust as the webhook's first key store.
func Keys(t testing.TB, typ, name string) config.Store {
	s := Trust(t, typ, name)
	s.KeyPath = "webhooks.siem.ws.ssl.keyManager.stores[0]"
	return s
}

// WithPassword is s with another password.
func WithPassword(s config.Store, pw string) config.Store {
	s.Password = config.Secret(pw)
	return s
}

// Read is the contents of a file of tlsconf/testdata.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
