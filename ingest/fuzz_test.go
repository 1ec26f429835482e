package ingest

import (
	"bytes"
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/audit"
)

var subjectToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// FuzzDecodeEntry: whatever a sender POSTs, the request decoder either
// refuses it as an *audit.InvalidError (400, dead-lettered) or returns the
// body itself, unchanged, with a subject of exactly one safe token under
// the configured one and a message id: never a wildcard, a space or a dot
// from the body in a subject, never a panic.
func FuzzDecodeEntry(f *testing.F) {
	if seeds, err := os.ReadFile("../examples/entries.jsonl"); err == nil {
		for _, line := range bytes.Split(seeds, []byte("\n")) {
			f.Add(line)
		}
	}
	for _, s := range []string{
		`{"action":"create","objectType":"Case","objectId":"~1"}`,
		`{"operation":"Creation","objectType":"case.task.>","objectId":"x"}`,
		`{"operation":"Creation","objectType":"a b*c","objectId":"x"}`,
		`{"operation":"Creation","objectType":"\u00e9t\u00e9","objectId":"x"}`,
		`{"operation":null,"action":"delete","objectType":"alert","objectId":"a"}`,
		`not json`, `[]`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := bytes.Clone(body)
		e, subject, err := decodeEntry("thehive.audit", body)
		if err != nil {
			var bad *audit.InvalidError
			if !errors.As(err, &bad) || bad.Reason == "" {
				t.Fatalf("error %v is not an *audit.InvalidError with a reason", err)
			}
			return
		}
		if !bytes.Equal(e.Raw, in) || !bytes.Equal(body, in) {
			t.Fatal("the body was changed")
		}
		tok, ok := strings.CutPrefix(subject, "thehive.audit.")
		if !ok || !subjectToken.MatchString(tok) {
			t.Fatalf("subject %q is not thehive.audit.<one safe token>", subject)
		}
		if id := e.Identity(); len(id) != 32 {
			t.Fatalf("identity %q", id)
		}
	})
}
