package audit

import (
	"encoding/json"
	"strconv"
	"strings"
)

// The scanner below walks JSON that json.Valid has accepted, so it only has
// to find where values end: strings (with their escapes) and nesting.

// eachField calls fn with every top-level key (as written, without quotes)
// and the span of its value, when data is a JSON object.
func eachField(data []byte, fn func(key, val []byte)) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] == '"'; {
		end := skipString(data, i)
		key := data[i+1 : end-1]
		i = skipSpace(data, skipSpace(data, end)+1) // past ':'
		vEnd := skipValue(data, i)
		fn(key, data[i:vEnd])
		i = skipSpace(data, vEnd)
		if i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
			continue
		}
		return
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string that starts at data[i].
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(data)
}

// skipValue returns the index after the value that starts at data[i].
func skipValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				j = skipString(data, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return len(data)
	}
	j := i
	for j < len(data) && !strings.ContainsRune(",}] \t\r\n", rune(data[j])) {
		j++
	}
	return j
}

// jsonString decodes a JSON string value; ok is false for anything else.
func jsonString(val []byte) (s string, ok bool) {
	if len(val) < 2 || val[0] != '"' {
		return "", false
	}
	inner := val[1 : len(val)-1]
	if !strings.ContainsRune(string(inner), '\\') {
		return string(inner), true
	}
	if json.Unmarshal(val, &s) != nil {
		return "", false
	}
	return s, true
}

// jsonInt reads a JSON number as an integer (a fraction is dropped); 0 for
// anything else.
func jsonInt(val []byte) int64 {
	if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
		return n
	}
	if f, err := strconv.ParseFloat(string(val), 64); err == nil && f >= -1<<63 && f < 1<<63 {
		return int64(f)
	}
	return 0
}

// stringField is the string value of key in the object obj, "" when obj is
// not an object or key is not a string there.
func stringField(obj []byte, key string) (s string) {
	eachField(obj, func(k, v []byte) {
		if string(k) == key {
			s, _ = jsonString(v)
		}
	})
	return s
}

// kind names a JSON value's type, for a reason.
func kind(val []byte) string {
	switch val[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	}
	return "a number"
}
