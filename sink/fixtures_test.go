package sink

import (
	"testing"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/tlstest"
)

// The TLS fixtures are tlsconf's (tlsconf/testdata), found through tlstest.

const storePassword = tlstest.Password

func testdata(t *testing.T, name string) string { return tlstest.Path(t, name) }

// fileStore is a trust store of the fixtures with the test password.
func fileStore(t *testing.T, typ, name string) config.Store { return tlstest.Trust(t, typ, name) }

// keyStore is a key store of the fixtures with the test password.
func keyStore(t *testing.T, typ, name string) config.Store { return tlstest.Keys(t, typ, name) }

func withPassword(s config.Store, pw string) config.Store { return tlstest.WithPassword(s, pw) }

func readPEM(t *testing.T, name string) []byte { return tlstest.Read(t, name) }
