package audit

import (
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Value decodes val, one JSON value that Decode has accepted (an entry's
// Raw, or a span Fields yields), to what json.Unmarshal into an any gives:
// map[string]any (the last of duplicate keys wins), []any (never nil),
// string, float64, bool or nil. A number out of float64's range is nil, as
// encoding/json leaves it when it reports the error. It does not check val:
// invalid JSON gives an unspecified value, never a panic. A differential
// fuzz test holds it to encoding/json.
//
// It skips what json.Unmarshal spends on a span already known valid: the
// second validating scan and reflection.
func Value(val []byte) any {
	d := valueDecoder{data: val}
	d.space()
	return d.value()
}

type valueDecoder struct {
	data []byte
	i    int
}

func (d *valueDecoder) space() { d.i = skipSpace(d.data, d.i) }

// value decodes the value at d.i and leaves d.i past it.
func (d *valueDecoder) value() any {
	if d.i >= len(d.data) {
		return nil
	}
	switch c := d.data[d.i]; c {
	case '{':
		return d.object()
	case '[':
		return d.array()
	case '"':
		return d.string()
	case 't':
		d.i += len("true")
		return true
	case 'f':
		d.i += len("false")
		return false
	case 'n':
		d.i += len("null")
		return nil
	}
	start := d.i
	for d.i < len(d.data) {
		c := d.data[d.i]
		if (c < '0' || c > '9') && c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E' {
			break
		}
		d.i++
	}
	f, err := strconv.ParseFloat(string(d.data[start:d.i]), 64)
	if err != nil {
		return nil
	}
	return f
}

func (d *valueDecoder) object() any {
	m := map[string]any{}
	d.i++ // '{'
	for {
		d.space()
		if d.i >= len(d.data) || d.data[d.i] != '"' {
			d.i++ // '}', or past the end of invalid input
			return m
		}
		key := d.string()
		d.space()
		d.i++ // ':'
		d.space()
		m[key] = d.value()
		d.space()
		if d.i < len(d.data) && d.data[d.i] == ',' {
			d.i++
			continue
		}
		d.i++ // '}'
		return m
	}
}

func (d *valueDecoder) array() any {
	a := make([]any, 0)
	d.i++ // '['
	d.space()
	if d.i < len(d.data) && d.data[d.i] == ']' {
		d.i++
		return a
	}
	for d.i < len(d.data) {
		a = append(a, d.value())
		d.space()
		if d.i < len(d.data) && d.data[d.i] == ',' {
			d.i++
			d.space()
			continue
		}
		d.i++ // ']'
		return a
	}
	return a
}

// string decodes the string at d.i. Without escapes or bytes outside ASCII
// it is the bytes as they are; otherwise unquote does what encoding/json
// does.
func (d *valueDecoder) string() string {
	start := d.i + 1
	for j := start; j < len(d.data); j++ {
		switch c := d.data[j]; {
		case c == '"':
			d.i = j + 1
			return string(d.data[start:j])
		case c == '\\' || c >= utf8.RuneSelf:
			end := skipString(d.data, d.i)
			d.i = end
			if end-1 < start {
				return ""
			}
			return unquote(d.data[start : end-1])
		}
	}
	d.i = len(d.data)
	return string(d.data[start:])
}

// unquote decodes a string's contents as encoding/json does: the escapes,
// \u surrogate pairs, and U+FFFD for a lone surrogate or a byte that is not
// UTF-8.
func unquote(s []byte) string {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			r++
			if r >= len(s) {
				return string(b)
			}
			switch s[r] {
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				if rr < 0 {
					return string(b)
				}
				r += 5
				if utf16.IsSurrogate(rr) {
					if len(s) > r+1 && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != utf8.RuneError {
							r += 6
							b = utf8.AppendRune(b, dec)
							continue
						}
					}
					rr = utf8.RuneError
				}
				b = utf8.AppendRune(b, rr)
				continue
			default: // '"', '\\', '/'
				b = append(b, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b)
}

// hex4 is the rune that four hex digits at the start of s spell, -1 when
// they do not.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
