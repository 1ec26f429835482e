package config

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEReferenceParses keeps the README's configuration reference true
// to the code: its HOCON block must parse with no problem other than the
// example store files not existing here.
func TestREADMEReferenceParses(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme[strings.Index(string(readme), "<!-- config-reference -->"):])
	block := regexp.MustCompile("(?s)```hocon\n(.*?)```").FindStringSubmatch(section)
	if block == nil {
		t.Fatal("no hocon block after <!-- config-reference --> in README.md")
	}
	for _, v := range regexp.MustCompile(`\$\{\?([A-Z_]+)\}`).FindAllStringSubmatch(block[1], -1) {
		t.Setenv(v[1], "whsec_"+strings.Repeat("QUJD", 8)) // a valid value for every kind of secret
	}
	_, err = Parse([]byte(block[1]), "/nonexistent/application.conf")
	var list ErrorList
	if err != nil && !errors.As(err, &list) {
		t.Fatalf("README reference does not parse: %v", err)
	}
	for _, fe := range list {
		if !errors.Is(fe, ErrFile) {
			t.Errorf("README reference: %v", fe)
		}
	}
	if len(list) == 0 {
		t.Error("the example store paths should be reported missing; is the block still read?")
	}
}
