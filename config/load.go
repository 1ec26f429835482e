package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gurkankaymak/hocon"
)

// maxIncludeDepth stops include cycles.
const maxIncludeDepth = 10

// Load reads, decodes and validates the config file at path. Relative paths
// in it resolve against its directory. A syntax error is returned as is; the
// problems of a file that parses are returned together as an ErrorList.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes and validates data as the config file named file, which is
// used to resolve relative paths and includes; "" means the working
// directory. Errors are as for Load. With an ErrorList, the returned Config
// is what could be decoded — never to be run, but `check` reads it to find
// the problems the other packages would (store contents) in the same run.
func Parse(data []byte, file string) (*Config, error) {
	abs, dir, err := locate(file)
	if err != nil {
		return nil, err
	}
	root, err := parseHOCON(data, abs, dir)
	if err != nil {
		return nil, err
	}
	d := &decoder{dir: dir}
	cfg := d.decode(root)
	cfg.File = abs
	if errs := d.errs.sorted(); len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

// locate returns the absolute path of file ("" stays "") and the directory
// relative paths resolve against.
func locate(file string) (abs, dir string, err error) {
	if file == "" {
		dir, err = os.Getwd()
		if err != nil {
			return "", "", fmt.Errorf("find working directory: %w", err)
		}
		return "", dir, nil
	}
	abs, err = filepath.Abs(file)
	if err != nil {
		return "", "", fmt.Errorf("locate config %s: %w", file, err)
	}
	return abs, filepath.Dir(abs), nil
}

// parseHOCON expands includes, then parses and resolves substitutions.
func parseHOCON(data []byte, file, dir string) (hocon.Object, error) {
	x := expander{rootDir: dir}
	text, err := x.expand(data, nameOr(file), dir, 0)
	if err != nil {
		return nil, err
	}
	parsed, err := hocon.ParseString(string(text))
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", nameOr(file), err)
	}
	root, ok := parsed.GetRoot().(hocon.Object)
	if !ok {
		return nil, fmt.Errorf("parse %s: want an object at the top level", nameOr(file))
	}
	return root, nil
}

func nameOr(file string) string {
	if file == "" {
		return "config"
	}
	return file
}

// expander inlines included files, each normalised like the top-level one.
// The library would include them itself, but without the normalisation and
// against the working directory when the text is parsed from memory.
type expander struct {
	rootDir string // where classpath(…) includes resolve
}

// expand normalises data (from file, in dir) and replaces its include
// directives with the included text. Each file is checked for syntax alone
// first, so a syntax error names the right file and line.
func (x *expander) expand(data []byte, file, dir string, depth int) ([]byte, error) {
	if depth > maxIncludeDepth {
		return nil, fmt.Errorf("include %s: nested deeper than %d (a cycle?)", file, maxIncludeDepth)
	}
	text, incs, err := normalise(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	if _, err := hocon.ParseStringUnresolved(string(blank(text, incs))); err != nil {
		return nil, fmt.Errorf("parse %s: %w", file, err)
	}
	for i := len(incs) - 1; i >= 0; i-- {
		body, err := x.included(incs[i], dir, depth)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		text = append(text[:incs[i].start:incs[i].start], append(body, text[incs[i].end:]...)...)
	}
	return text, nil
}

// blank replaces the include directives with spaces, keeping line numbers.
func blank(text []byte, incs []include) []byte {
	out := bytes.Clone(text)
	for _, inc := range incs {
		for i := inc.start; i < inc.end; i++ {
			out[i] = ' '
		}
	}
	return out
}

// included returns the expanded text of one include directive. As in
// HOCON, a name without extension includes name.json then name.conf, and a
// missing file is skipped unless the include is required(…).
func (x *expander) included(inc include, dir string, depth int) ([]byte, error) {
	base := dir
	if inc.classpath {
		base = x.rootDir
	}
	path := inc.path
	if !filepath.IsAbs(path) {
		path = filepath.Join(base, path)
	}
	var out []byte
	found := false
	for _, p := range includeCandidates(path) {
		body, err := x.includeFile(p, depth)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		found = true
		out = append(append(out, '\n'), body...)
	}
	if !found && inc.required {
		return nil, fmt.Errorf("include %s: %w", path, os.ErrNotExist)
	}
	return out, nil
}

func includeCandidates(path string) []string {
	if filepath.Ext(path) != "" {
		return []string{path}
	}
	return []string{path, path + ".json", path + ".conf"}
}

func (x *expander) includeFile(path string, depth int) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("include: %w", err)
	}
	text, err := x.expand(data, path, filepath.Dir(path), depth+1)
	if err != nil {
		return nil, err
	}
	return stripRootBraces(text), nil
}

// stripRootBraces removes the braces around a whole included file
// (`{ a = 1 }`), which would not parse in the middle of an object.
func stripRootBraces(text []byte) []byte {
	first, last := significant(text)
	if first < 0 || text[first] != '{' || text[last] != '}' {
		return text
	}
	out := bytes.Clone(text)
	out[first], out[last] = ' ', ' '
	return out
}

// significant returns the positions of the first and last bytes outside
// whitespace, comments and strings' insides (-1 when there are none).
func significant(text []byte) (first, last int) {
	first, last = -1, -1
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		case c == '#' || bytes.HasPrefix(text[i:], []byte("//")):
			for i < len(text) && text[i] != '\n' {
				i++
			}
			continue
		case c == '"':
			i = quotedEnd(text, i) - 1
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	return first, last
}
