package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// normalise works around two defects of gurkankaymak/hocon 1.3.x before the
// text reaches it:
//
//   - a triple-quoted string (the usual way to inline a PEM trust store) only
//     parses when it ends the file;
//   - escapes in quoted strings ("a\"b", "C:\\ca") are not decoded: the
//     library keeps the backslashes.
//
// Each triple-quoted string, and each quoted string with an escape, becomes
// an ordinary quoted string holding its decoded text in a form the library
// passes through unchanged (see encodeText); decodeText restores it when a
// value is read. Values substituted from the environment never contain that
// form, so they are never altered. Strings without escapes and comments are
// copied byte for byte. The newlines a triple-quoted string held are given
// back at the end of its line, so the library's line numbers stay right.
//
// normalise also finds the `include` directives (outside strings and
// comments) so that the loader can apply the same treatment to included
// files; it returns their positions in the output.
func normalise(src []byte) ([]byte, []include, error) {
	n := normaliser{src: src, atStart: true}
	for n.i < len(src) {
		if err := n.step(); err != nil {
			return nil, nil, err
		}
	}
	n.flushNewlines()
	return n.out.Bytes(), n.incs, nil
}

// include is an `include` directive: out[start:end] is replaced by the
// included text.
type include struct {
	start, end int
	path       string
	required   bool
	classpath  bool
}

type normaliser struct {
	src     []byte
	i       int
	out     bytes.Buffer
	pending int  // newlines swallowed by triple-quoted strings
	atStart bool // at the start of a field, where `include` may appear
	incs    []include
}

func (n *normaliser) step() error {
	rest := n.src[n.i:]
	switch {
	case rest[0] == '\n':
		n.out.WriteByte('\n')
		n.flushNewlines()
		n.i++
		n.atStart = true
	case rest[0] == '#' || bytes.HasPrefix(rest, []byte("//")):
		n.copyComment()
	case bytes.HasPrefix(rest, []byte(`"""`)):
		n.tripleQuoted()
		n.atStart = false
	case rest[0] == '"':
		n.quoted()
		n.atStart = false
	case n.atStart && isIncludeKeyword(rest):
		return n.include()
	default:
		n.plain(rest[0])
	}
	return nil
}

func (n *normaliser) plain(c byte) {
	n.out.WriteByte(c)
	n.i++
	switch c {
	case ' ', '\t', '\r':
	case '{', ',':
		n.atStart = true
	default:
		n.atStart = false
	}
}

func (n *normaliser) flushNewlines() {
	n.out.WriteString(strings.Repeat("\n", n.pending))
	n.pending = 0
}

func (n *normaliser) copyComment() {
	end := bytes.IndexByte(n.src[n.i:], '\n')
	if end < 0 {
		end = len(n.src) - n.i
	}
	n.out.Write(n.src[n.i : n.i+end])
	n.i += end
}

// tripleQuoted ends at the last three quotes of the first run of three or
// more: as HOCON says, extra quotes before them belong to the string.
func (n *normaliser) tripleQuoted() {
	body := n.src[n.i+3:]
	end := bytes.Index(body, []byte(`"""`))
	if end < 0 { // unterminated: let the library report it
		n.out.Write(n.src[n.i:])
		n.i = len(n.src)
		return
	}
	for end+3 < len(body) && body[end+3] == '"' {
		end++
	}
	text := string(body[:end])
	n.out.WriteString(encodeText(text))
	n.pending += strings.Count(text, "\n")
	n.i += 3 + end + 3
}

// quoted copies an ordinary quoted string, re-encoding it only when it holds
// an escape the library would keep verbatim.
func (n *normaliser) quoted() {
	end := quotedEnd(n.src, n.i)
	raw := n.src[n.i:end]
	n.i = end
	if !bytes.ContainsRune(raw, '\\') {
		n.out.Write(raw)
		return
	}
	text, err := strconv.Unquote(string(raw))
	if err != nil { // not a valid JSON/Go escape: leave it to the library
		n.out.Write(raw)
		return
	}
	n.out.WriteString(encodeText(text))
}

// quotedEnd returns the index after the closing quote of the string opening
// at src[i], or the end of the line when it is unterminated.
func quotedEnd(src []byte, i int) int {
	for j := i + 1; j < len(src); j++ {
		switch src[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		case '\n':
			return j
		}
	}
	return len(src)
}

const (
	encodedOpen  = "\uE000" // private-use code points: never in a config or the environment
	encodedClose = "\uE001"
)

// encodeText returns a quoted HOCON string that the library reads as text
// unchanged when it can, else as base64 between private-use markers.
func encodeText(text string) string {
	if !strings.ContainsAny(text, "\"\\") && !hasControl(text) {
		return `"` + text + `"`
	}
	return `"` + encodedOpen + base64.RawURLEncoding.EncodeToString([]byte(text)) + encodedClose + `"`
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// decodeText restores every piece of s that encodeText encoded; a value
// built by concatenation may hold several.
func decodeText(s string) string {
	var b strings.Builder
	for {
		start := strings.Index(s, encodedOpen)
		if start < 0 {
			break
		}
		end := strings.Index(s[start:], encodedClose)
		if end < 0 {
			break
		}
		raw, err := base64.RawURLEncoding.DecodeString(s[start+len(encodedOpen) : start+end])
		if err != nil {
			break
		}
		b.WriteString(s[:start])
		b.Write(raw)
		s = s[start+end+len(encodedClose):]
	}
	b.WriteString(s)
	return b.String()
}

func isIncludeKeyword(rest []byte) bool {
	after, ok := bytes.CutPrefix(rest, []byte("include"))
	return ok && len(after) > 0 && (after[0] == ' ' || after[0] == '\t')
}

// include parses `include "f"`, `include file("f")`, `include classpath("f")`
// and `include required(…)` around either.
func (n *normaliser) include() error {
	line := bytes.Count(n.src[:n.i], []byte("\n")) + 1
	rest := n.src[n.i+len("include"):]
	end := bytes.IndexByte(rest, '\n')
	if end < 0 {
		end = len(rest)
	}
	inc, used, err := parseIncludeArgs(string(rest[:end]))
	if err != nil {
		return fmt.Errorf("line %d: include: %w", line, err)
	}
	inc.start = n.out.Len()
	n.out.Write(n.src[n.i : n.i+len("include")+used])
	inc.end = n.out.Len()
	n.incs = append(n.incs, inc)
	n.i += len("include") + used
	n.atStart = false
	return nil
}

// parseIncludeArgs reads the argument of an include directive from s and
// returns how many bytes it used.
func parseIncludeArgs(s string) (include, int, error) {
	var inc include
	body := strings.TrimLeft(s, " \t")
	closers := 0
	for _, w := range []string{"required(", "file(", "classpath(", "url("} {
		if after, ok := strings.CutPrefix(body, w); ok {
			switch w {
			case "required(":
				inc.required = true
			case "classpath(":
				inc.classpath = true
			case "url(":
				return inc, 0, fmt.Errorf("url(…) is %w", ErrUnsupported)
			}
			body, closers = strings.TrimLeft(after, " \t"), closers+1
		}
	}
	if !strings.HasPrefix(body, `"`) {
		return inc, 0, fmt.Errorf("want a quoted file name")
	}
	end := quotedEnd([]byte(body), 0)
	path, err := strconv.Unquote(body[:end])
	if err != nil {
		return inc, 0, fmt.Errorf("want a quoted file name: %w", err)
	}
	inc.path = path
	tail := body[end:]
	for range closers {
		tail = strings.TrimLeft(tail, " \t")
		if !strings.HasPrefix(tail, ")") {
			return inc, 0, fmt.Errorf("missing closing parenthesis")
		}
		tail = tail[1:]
	}
	return inc, len(s) - len(tail), nil
}
