package config

import (
	"strings"
	"testing"

	"github.com/gurkankaymak/hocon"
)

// TestLibraryStillNeedsNormalise fails once gurkankaymak/hocon parses a
// triple-quoted string in the middle of a file: then the triple-quote part of
// normalise can go (the escape part too, if the library decodes escapes).
func TestLibraryStillNeedsNormalise(t *testing.T) {
	_, err := hocon.ParseString("a = \"\"\"x\ny\"\"\"\nb = 2\n")
	if err == nil {
		t.Fatal("hocon now parses triple-quoted strings mid-file: remove normalise")
	}
	c, err := hocon.ParseString(`a = "x\"y"`)
	if err != nil || c.GetString("a") != `x\"y` {
		t.Fatalf("hocon now decodes escapes (a = %q, %v): drop the escape part of normalise", c.GetString("a"), err)
	}
}

func TestNormalise(t *testing.T) {
	enc := func(s string) string { return encodeText(s) }
	for _, tt := range []struct {
		name, in, want string
	}{
		{"plain text is untouched", "a = 1\nb = \"x y\" # c\n", "a = 1\nb = \"x y\" # c\n"},
		{"triple-quoted mid-file, newlines given back at the line end",
			"a = \"\"\"x\ny\"\"\", c = 1\nb = 2", "a = " + enc("x\ny") + ", c = 1\n\nb = 2"},
		{"triple-quoted without specials is a plain string", `a = """abc"""`, `a = "abc"`},
		{"quotes inside a triple-quoted string", `a = """say "hi" \n"""`, "a = " + enc(`say "hi" \n`)},
		{"extra quotes before the end belong to the string", `a = """x""""`, "a = " + enc(`x"`)},
		{"triple quotes in a # comment", "# a = \"\"\"\nb = 1", "# a = \"\"\"\nb = 1"},
		{"triple quotes in a // comment", "// \"\"\"x\nb = \"\"\"y\"\"\"", "// \"\"\"x\nb = \"y\""},
		{"# and // inside strings are not comments", `a = "#x//y", b = """#z"""`, `a = "#x//y", b = "#z"`},
		{"triple quotes inside a string are not one", `a = "x\"\"\"y"`, "a = " + enc(`x"""y`)},
		{"escapes are decoded", `a = "C:\\ca\tb"`, "a = " + enc("C:\\ca\tb")},
		{"unterminated is left to the library", "a = \"\"\"x\n", "a = \"\"\"x\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := normalise([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("normalise(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestNormaliseThroughLibrary parses normalised text with the library and
// checks the values decode back to what the file meant.
func TestNormaliseThroughLibrary(t *testing.T) {
	in := "a = \"\"\"-----BEGIN-----\nAB\"C\\D\n-----END-----\n\"\"\"\n" +
		"b = \"x\\\"y\" \"\"\"z\"\"\" # concatenated\n" +
		"c = \"\"\"# not a comment\"\"\"\n"
	out, _, err := normalise([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	c, err := hocon.ParseString(string(out))
	if err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	for key, want := range map[string]string{
		"a": "-----BEGIN-----\nAB\"C\\D\n-----END-----\n",
		"b": `x"y z`,
		"c": "# not a comment",
	} {
		if got := decodeText(c.GetString(key)); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got := strings.Count(string(out), "\n"); got != strings.Count(in, "\n") {
		t.Errorf("lines: %d, want %d", got, strings.Count(in, "\n"))
	}
}

func TestIncludeDirectives(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want include
	}{
		{`include "a.conf"`, include{path: "a.conf"}},
		{`include file("a.conf")`, include{path: "a.conf"}},
		{`include required(file("a.conf"))`, include{path: "a.conf", required: true}},
		{`include required( "a" )`, include{path: "a", required: true}},
		{`include classpath("a.conf")`, include{path: "a.conf", classpath: true}},
		{"x { include \"a\" }", include{path: "a"}},
	} {
		_, incs, err := normalise([]byte(tt.in))
		if err != nil || len(incs) != 1 {
			t.Errorf("%s: %v, %v", tt.in, incs, err)
			continue
		}
		got := incs[0]
		got.start, got.end = 0, 0
		if got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{`# include "a"`, `a = "include \"b\""`, `includes = 1`, `a = include`} {
		if _, incs, err := normalise([]byte(in)); err != nil || len(incs) != 0 {
			t.Errorf("%s: %v, %v, want no include", in, incs, err)
		}
	}
	if _, _, err := normalise([]byte(`include url("http://x/a.conf")`)); err == nil {
		t.Error("include url(…): no error")
	}
}
