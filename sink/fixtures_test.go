package sink

import (
	"os"
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

func withPassword(s config.Store, pw string) config.Store {
	s.Password = config.Secret(pw)
	return s
}

func readPEM(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testdata(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
