package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, seen from this package's directory.
const root = "../.."

// testRef is a test named in the docs: `relay.TestReload`,
// `cmd/auditrelay.TestSIGHUPReloads`, `audit.FuzzDecode`.
var testRef = regexp.MustCompile("`((?:[a-z][a-z0-9]*/)*[a-z][a-z0-9]*)\\.((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)`")

// ref is one test named by a page.
type ref struct{ pkg, name string }

// refs returns every test named in text, in order, once each.
func refs(text string) []ref {
	var out []ref
	seen := map[ref]bool{}
	for _, m := range testRef.FindAllStringSubmatch(text, -1) {
		r := ref{m[1], m[2]}
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// missing returns the refs that have no `func <name>(` in a *_test.go file
// of their package's directory under dir.
func missing(t *testing.T, dir string, rs []ref) []ref {
	t.Helper()
	var out []ref
	for _, r := range rs {
		files, err := filepath.Glob(filepath.Join(dir, filepath.FromSlash(r.pkg), "*_test.go"))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, f := range files {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(src), "\nfunc "+r.name+"(") {
				found = true
				break
			}
		}
		if !found {
			out = append(out, r)
		}
	}
	return out
}

// TestGuaranteesNameRealTests checks that every test docs/guarantees.md
// names as keeping a promise exists, in the package it names.
func TestGuaranteesNameRealTests(t *testing.T) {
	page, err := os.ReadFile(filepath.Join(root, "docs", "guarantees.md"))
	if err != nil {
		t.Fatal(err)
	}
	rs := refs(string(page))
	if len(rs) < 50 {
		t.Fatalf("docs/guarantees.md names %d tests; is the pkg.TestName form still used?", len(rs))
	}
	for _, r := range missing(t, root, rs) {
		t.Errorf("docs/guarantees.md names %s.%s, which is not a test of %s", r.pkg, r.name, r.pkg)
	}
}

// TestEveryPageNamesRealTests does the same for the other pages and the
// README: a test they cite as proof must exist too.
func TestEveryPageNamesRealTests(t *testing.T) {
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range append(pages, filepath.Join(root, "README.md")) {
		text, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range missing(t, root, refs(string(text))) {
			t.Errorf("%s names %s.%s, which is not a test of %s", filepath.Base(p), r.pkg, r.name, r.pkg)
		}
	}
}

// TestMadeUpNamesAreCaught keeps the check able to fail: a made-up test, a
// real test in the wrong package and a package that does not exist are each
// reported, and a real one is not.
func TestMadeUpNamesAreCaught(t *testing.T) {
	page := "| a promise | `relay.TestReload`, `relay.TestNoSuchPromiseKept` |\n" +
		"| another | `sink.TestReload`, `nosuchpkg.TestReload`, `cmd/auditrelay.TestSIGTERMDrainsAndExitsZero` |\n"
	rs := refs(page)
	if len(rs) != 5 {
		t.Fatalf("refs found %v, want 5 tests", rs)
	}
	var got []string
	for _, r := range missing(t, root, rs) {
		got = append(got, r.pkg+"."+r.name)
	}
	if want := "relay.TestNoSuchPromiseKept sink.TestReload nosuchpkg.TestReload"; strings.Join(got, " ") != want {
		t.Errorf("missing: got %q, want %q", strings.Join(got, " "), want)
	}
}
