package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gurkankaymak/hocon"
)

// decoder collects every problem of a file while its sections are read
// over the defaults.
type decoder struct {
	dir      string // relative paths resolve against it
	errs     ErrorList
	warnings []string
}

func (d *decoder) fail(path string, err error) {
	d.errs = append(d.errs, &FieldError{Path: path, Err: err})
}

func (d *decoder) warn(path, msg string) {
	w := path + ": " + msg
	if !slices.Contains(d.warnings, w) {
		d.warnings = append(d.warnings, w)
	}
}

// file resolves p against the config's directory and reports at path when
// it does not exist. The contents are not read here: the packages that use
// a file parse it.
func (d *decoder) file(path, p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	if _, err := os.Stat(p); err != nil {
		d.fail(path, newKind(ErrFile, "%s %s: %v", ErrFile, p, errNoPath(err)))
	}
	return p
}

// errNoPath drops the file name an *os.PathError repeats.
func errNoPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// node is one HOCON object being read. It remembers the keys asked for, so
// the others can be reported as unknown, with the nearest known key.
type node struct {
	d       *decoder
	path    string
	obj     hocon.Object
	known   []string
	lenient bool // play.ws: the application's, unknown keys only warn
}

func (d *decoder) node(path string, obj hocon.Object, lenient bool) *node {
	return &node{d: d, path: path, obj: obj, lenient: lenient}
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// at returns the path of key, quoted when it is not a plain word.
func (n *node) at(key string) string {
	if !plainKey.MatchString(key) {
		key = strconv.Quote(key)
	}
	if n.path == "" {
		return key
	}
	return n.path + "." + key
}

func (n *node) fail(key string, err error) { n.d.fail(n.at(key), err) }

// get returns the value of key, absent when missing or null.
func (n *node) get(key string) (hocon.Value, bool) {
	n.known = append(n.known, key)
	v, ok := n.obj[key]
	if !ok || v == nil || v.Type() == hocon.NullType {
		return nil, false
	}
	return v, true
}

// child returns the object at key, or nil when it is absent or not an
// object (then reported).
func (n *node) child(key string) *node {
	v, ok := n.get(key)
	if !ok {
		return nil
	}
	obj, ok := v.(hocon.Object)
	if !ok {
		n.fail(key, invalid("want an object, got %s", describe(v)))
		return nil
	}
	return &node{d: n.d, path: n.at(key), obj: obj, lenient: n.lenient}
}

// unsupported reports key, when present, as one auditrelay cannot honour.
func (n *node) unsupported(key, why string) {
	if _, ok := n.get(key); !ok {
		return
	}
	if n.lenient {
		n.d.warn(n.at(key), "ignored, "+ErrUnsupported.Error()+" ("+why+")")
		return
	}
	n.fail(key, unsupported(why))
}

// finish reports the keys nobody asked for.
func (n *node) finish() {
	keys := make([]string, 0, len(n.obj))
	for k := range n.obj {
		if !slices.Contains(n.known, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if n.lenient {
			n.d.warn(n.at(k), "ignored by auditrelay")
			continue
		}
		n.fail(k, unknownKey(k, n.known))
	}
}

// str reads a string; numbers and booleans are taken as their text, as
// HOCON allows (`password = 123456`).
func (n *node) str(key string, dst *string) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	s, err := text(v)
	if err != nil {
		n.fail(key, err)
		return false
	}
	*dst = s
	return true
}

func (n *node) secret(key string, dst *Secret) bool {
	var s string
	if !n.str(key, &s) {
		return false
	}
	*dst = Secret(s)
	return true
}

func text(v hocon.Value) (string, error) {
	switch v := v.(type) {
	case hocon.String:
		return decodeText(string(v)), nil
	case hocon.Int, hocon.Float64, hocon.Float32, hocon.Boolean:
		return v.String(), nil
	}
	return "", invalid("want a string, got %s", describe(v))
}

// describe names a value in an error without quoting long or secret text.
func describe(v hocon.Value) string {
	switch v.(type) {
	case hocon.Object:
		return "an object"
	case hocon.Array:
		return "a list"
	case hocon.Duration:
		return "a duration"
	case hocon.Boolean:
		return "a boolean"
	case hocon.String:
		return "a string"
	}
	return "a number"
}

// quoteValue shows a value the user wrote in an error, shortened.
func quoteValue(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return strconv.Quote(s)
}

func (n *node) boolean(key string, dst *bool) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	switch v := v.(type) {
	case hocon.Boolean:
		*dst = bool(v)
		return true
	case hocon.String: // from the environment
		if b, ok := parseBool(decodeText(string(v))); ok {
			*dst = b
			return true
		}
	}
	n.fail(key, invalid("want true or false, got %s", describeValue(v)))
	return false
}

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on":
		return true, true
	case "false", "no", "off":
		return false, true
	}
	return false, false
}

// describeValue shows a scalar the user wrote, or its kind.
func describeValue(v hocon.Value) string {
	if s, ok := v.(hocon.String); ok {
		return quoteValue(decodeText(string(s)))
	}
	if _, ok := v.(hocon.Int); ok {
		return v.String()
	}
	return describe(v)
}

func (n *node) integer(key string, dst *int) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	switch v := v.(type) {
	case hocon.Int:
		*dst = int(v)
		return true
	case hocon.String:
		if i, err := strconv.Atoi(strings.TrimSpace(decodeText(string(v)))); err == nil {
			*dst = i
			return true
		}
	}
	n.fail(key, invalid("want an integer, got %s", describeValue(v)))
	return false
}

// duration reads a HOCON duration (`500ms`, `30s`, `30 days`); a bare
// number is milliseconds, as in HOCON.
func (n *node) duration(key string, dst *time.Duration) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	switch v := v.(type) {
	case hocon.Duration:
		*dst = time.Duration(v)
		return true
	case hocon.Int:
		*dst = time.Duration(v) * time.Millisecond
		return true
	case hocon.String:
		if d, err := parseDuration(decodeText(string(v))); err == nil {
			*dst = d
			return true
		}
	}
	n.fail(key, invalid("want a duration such as 30s, 5m or 30d, got %s", describeValue(v)))
	return false
}

// positiveDuration reads a duration that must be more than zero.
func (n *node) positiveDuration(key string, dst *time.Duration) {
	var d time.Duration
	if !n.duration(key, &d) {
		return
	}
	if d <= 0 {
		n.fail(key, invalid("must be more than 0, got %s", formatDuration(d)))
		return
	}
	*dst = d
}

// size reads a HOCON size (`1MiB`, `1M`, `512k`, a plain number of bytes).
func (n *node) size(key string, dst *int64) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	switch v := v.(type) {
	case hocon.Int:
		*dst = int64(v)
		return true
	case hocon.String:
		if b, err := parseSize(decodeText(string(v))); err == nil {
			*dst = b
			return true
		}
	}
	n.fail(key, invalid("want a size such as 1MiB, 512k or a number of bytes, got %s", describeValue(v)))
	return false
}

// strings reads a list of strings; a single string is a list of one.
func (n *node) strings(key string, dst *[]string) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	arr, ok := v.(hocon.Array)
	if !ok {
		arr = hocon.Array{v}
	}
	out := make([]string, 0, len(arr))
	for i, item := range arr {
		s, err := text(item)
		if err != nil {
			n.d.fail(fmt.Sprintf("%s[%d]", n.at(key), i), err)
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

// objects reads a list of objects, calling each with its node.
func (n *node) objects(key string, each func(i int, item *node)) bool {
	v, ok := n.get(key)
	if !ok {
		return false
	}
	arr, ok := v.(hocon.Array)
	if !ok {
		n.fail(key, invalid("want a list, got %s", describe(v)))
		return false
	}
	for i, item := range arr {
		path := fmt.Sprintf("%s[%d]", n.at(key), i)
		obj, ok := item.(hocon.Object)
		if !ok {
			n.d.fail(path, invalid("want an object, got %s", describe(item)))
			continue
		}
		each(i, &node{d: n.d, path: path, obj: obj, lenient: n.lenient})
	}
	return true
}

// oneOf reads a string that must be one of words, matched in any case and
// stored as written in words.
func oneOf[T ~string](n *node, key string, dst *T, words ...T) bool {
	var s string
	if !n.str(key, &s) {
		return false
	}
	for _, w := range words {
		if strings.EqualFold(s, string(w)) {
			*dst = w
			return true
		}
	}
	list := make([]string, len(words))
	for i, w := range words {
		list[i] = string(w)
	}
	n.fail(key, invalid("%s is not one of %s", quoteValue(s), strings.Join(list, ", ")))
	return false
}
