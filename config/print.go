package config

import (
	"encoding"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Print writes the resolved config as HOCON for `auditrelay check`: every
// key with its value after defaults and layering, read from the typed
// structs themselves, so a new key is printed without a line of code here.
// Webhook URLs read scheme://host:port/**** (RedactURL); every secret and
// every configured header value reads ****. Warnings are not printed.
//
// A field's key is its name in lower camel case, or its `hocon` tag:
// `hocon:"-"` leaves it out; the options after the name are url (a URL,
// redacted), size (bytes, as 1MiB), masked (a map whose values are
// secrets), pem (inline PEM, shown by its length) and omitempty.
func (c *Config) Print(w io.Writer) error {
	p := &printer{w: w}
	if c.File != "" {
		p.line("# %s", c.File)
	}
	p.block("auditrelay", reflect.ValueOf(c.Auditrelay))
	p.open("webhooks")
	for i := range c.Webhooks {
		wh := &c.Webhooks[i]
		p.line("%s {  # %s", quoteKey(wh.Name), wh.KeyPath)
		p.indent++
		if wh.IngestHop {
			p.line("# the ingest hop (auditrelay.ingest.listen): not delivered to")
		}
		p.fields(reflect.ValueOf(*wh))
		p.close()
	}
	p.close()
	if p.err != nil {
		return fmt.Errorf("print config: %w", p.err)
	}
	return nil
}

// printer indents blocks and keeps the first write error.
type printer struct {
	w      io.Writer
	indent int
	err    error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, strings.Repeat("  ", p.indent)+format+"\n", args...)
	}
}

func (p *printer) open(key string) { p.line("%s {", key); p.indent++ }
func (p *printer) close()          { p.indent--; p.line("}") }

// block prints a struct: on one line when it holds only plain values
// (`retry { maxAttempts = 15, … }`), else as an indented block.
func (p *printer) block(key string, v reflect.Value) {
	kv, ok := flat(v)
	switch {
	case ok && len(kv) == 0:
		return // nothing set, nothing to show (a fetch without credentials)
	case ok:
		p.line("%s { %s }", key, strings.Join(kv, ", "))
		return
	}
	p.open(key)
	p.fields(v)
	p.close()
}

// flat is a struct's keys and values when none of them is a block or a
// list of objects.
func flat(v reflect.Value) ([]string, bool) {
	var kv []string
	for i := range v.NumField() {
		tag, f := tagOf(v.Type().Field(i)), v.Field(i)
		switch {
		case tag.skip || (tag.omit && f.IsZero()):
			continue
		case f.Type() == secretType:
			if f.String() != "" {
				kv = append(kv, tag.key+" = "+strconv.Quote(redacted))
			}
			continue
		case f.Kind() == reflect.Struct && !f.Type().Implements(textType), f.Kind() == reflect.Map,
			f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			return nil, false
		}
		kv = append(kv, tag.key+" = "+scalar(tag, f))
	}
	return kv, true
}

// fieldTag is a struct field's `hocon` tag, parsed.
type fieldTag struct {
	key                                string
	skip, url, size, masked, pem, omit bool
}

func tagOf(f reflect.StructField) fieldTag {
	parts := strings.Split(f.Tag.Get("hocon"), ",")
	t := fieldTag{key: parts[0]}
	if t.key == "-" {
		return fieldTag{skip: true}
	}
	if t.key == "" {
		t.key = lowerCamel(f.Name)
	}
	for _, o := range parts[1:] {
		switch o {
		case "url":
			t.url = true
		case "size":
			t.size = true
		case "masked":
			t.masked = true
		case "pem":
			t.pem = true
		case "omitempty":
			t.omit = true
		}
	}
	return t
}

// lowerCamel is a Go field name as a HOCON key: MaxEntryBytes is
// maxEntryBytes, an acronym (URL, NATS, SSL) all lower case.
func lowerCamel(name string) string {
	if strings.ToUpper(name) == name {
		return strings.ToLower(name)
	}
	r := []rune(name)
	r[0] = unicode.ToLower(r[0])
	return string(r)
}

func (p *printer) fields(v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag := tagOf(f)
		if tag.skip || !f.IsExported() {
			continue
		}
		p.value(tag, v.Field(i))
	}
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[Secret]()
	textType     = reflect.TypeFor[encoding.TextMarshaler]()
)

// value prints one key: a block for a struct, a line for anything else.
func (p *printer) value(tag fieldTag, v reflect.Value) {
	if tag.omit && v.IsZero() {
		return
	}
	switch {
	case v.Type() == secretType:
		if v.String() != "" {
			p.line("%s = %q", tag.key, redacted)
		}
	case v.Kind() == reflect.Struct && !v.Type().Implements(textType):
		p.block(tag.key, v)
	case v.Kind() == reflect.Map:
		p.mapBlock(tag, v)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct:
		p.structList(tag.key, v)
	default:
		p.line("%s = %s", tag.key, scalar(tag, v))
	}
}

func (p *printer) mapBlock(tag fieldTag, v reflect.Value) {
	if v.Len() == 0 {
		return
	}
	p.open(tag.key)
	m := v.Interface().(map[string]string)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		val := strconv.Quote(m[k])
		if tag.masked {
			// Any header may carry a credential (X-Api-Key, a tenant
			// token), whatever its name.
			val = strconv.Quote(redacted)
		}
		p.line("%s = %s", strconv.Quote(k), val)
	}
	p.close()
}

// structList prints a list of objects (stores), one line each.
func (p *printer) structList(key string, v reflect.Value) {
	if v.Len() == 0 {
		return
	}
	p.line("%s = [", key)
	p.indent++
	for i := range v.Len() {
		var kv []string
		e := v.Index(i)
		for j := range e.NumField() {
			tag := tagOf(e.Type().Field(j))
			f := e.Field(j)
			if tag.skip || (tag.omit && f.IsZero()) || (f.Type() == secretType && f.String() == "") {
				continue
			}
			val := scalar(tag, f)
			if f.Type() == secretType {
				val = strconv.Quote(redacted)
			}
			kv = append(kv, tag.key+" = "+val)
		}
		p.line("{ %s }", strings.Join(kv, ", "))
	}
	p.indent--
	p.line("]")
}

// scalar is one value as HOCON: strings quoted, durations and sizes as
// HOCON writes them, lists in brackets.
func scalar(tag fieldTag, v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return formatDuration(time.Duration(v.Int()))
	case tag.size:
		return formatSize(v.Int())
	case v.Type().Implements(textType):
		b, _ := v.Interface().(encoding.TextMarshaler).MarshalText()
		return strconv.Quote(string(b))
	case v.Kind() == reflect.Slice:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = scalar(tag, v.Index(i))
		}
		return "[" + strings.Join(items, ", ") + "]"
	case v.Kind() == reflect.String:
		s := v.String()
		switch {
		case tag.url:
			s = RedactURL(s)
		case tag.pem:
			s = fmt.Sprintf("(inline PEM, %d bytes)", len(s))
		}
		return strconv.Quote(s)
	}
	return fmt.Sprint(v.Interface())
}

func quoteKey(k string) string {
	if plainKey.MatchString(k) {
		return k
	}
	return strconv.Quote(k)
}
