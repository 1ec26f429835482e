package sink

import (
	"bytes"
	"sync"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// exprFilter evaluates a filter expression over an entry. The expression
// sees the entry decoded as JSON (numbers as float64) and nothing else: no
// function is added to the language, and config.CompileExpr takes away the
// clock and bounds the expression's size; the VM's memory budget bounds
// what its loops may allocate.
type exprFilter struct {
	program *vm.Program
	// fields are the top-level fields the expression names; only those are
	// decoded. nil with all set: it reads $env, so the whole entry.
	fields []string
	all    bool
	vms    sync.Pool
}

func newExprFilter(src string) (*exprFilter, error) {
	p, err := config.CompileExpr(src)
	if err != nil {
		return nil, err
	}
	x := &exprFilter{program: p}
	x.fields, x.all = exprFields(p.Node())
	x.vms.New = func() any { return &exprRun{env: make(map[string]any, len(x.fields))} }
	return x, nil
}

// exprFields lists the identifiers of an expression: an identifier that is
// not a variable of its own (let, a predicate's) reads the top-level field
// of that name. Listing a variable too only decodes a field in vain.
func exprFields(n ast.Node) (fields []string, all bool) {
	seen := map[string]bool{}
	ast.Find(n, func(n ast.Node) bool {
		if id, ok := n.(*ast.IdentifierNode); ok {
			if id.Value == "$env" {
				all = true
			} else if !seen[id.Value] {
				seen[id.Value] = true
				fields = append(fields, id.Value)
			}
		}
		return false
	})
	return fields, all
}

// match reports whether the expression holds for e. An expression that
// fails on an entry (a field it reads is missing or of another type) does
// not hold: the entry is filtered, as one without the field would be.
func (x *exprFilter) match(e *audit.Entry) bool {
	r := x.vms.Get().(*exprRun)
	out, err := r.vm.Run(x.program, x.env(e, r.env))
	clear(r.env)
	x.vms.Put(r)
	ok, _ := out.(bool)
	return err == nil && ok
}

// exprRun is a VM and the map of fields it is given, reused together: the
// map is cleared after each run.
type exprRun struct {
	vm  vm.VM
	env map[string]any
}

// env decodes the fields the expression reads into env, empty, and returns
// it; an expression that reads $env gets the whole entry in a map of its
// own. A field absent from the entry is absent from env, as it would be
// decoding the whole entry.
func (x *exprFilter) env(e *audit.Entry, env map[string]any) map[string]any {
	if x.all {
		env, _ := audit.Value(e.Raw).(map[string]any) // Raw is a JSON object: Decode checked it
		return env
	}
	e.Fields(func(key, val []byte) {
		for _, f := range x.fields {
			if keyIs(key, f) {
				env[f] = audit.Value(val) // a span of valid JSON
				return
			}
		}
	})
	return env
}

// keyIs reports whether key, as written in the entry, names the field
// name. Only a key with an escape is decoded.
func keyIs(key []byte, name string) bool {
	if bytes.IndexByte(key, '\\') < 0 {
		return string(key) == name
	}
	s, _ := audit.Value(append(append([]byte{'"'}, key...), '"')).(string)
	return s == name
}
