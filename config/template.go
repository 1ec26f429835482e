package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// The template language and the filter expressions are defined here, beside
// the keys that hold them, so that a template or expression that cannot work
// is a configuration error found by `check`, at start and on reload, and
// the delivery engine builds from the very same definitions.

// forbiddenFuncs are the sprig functions that reach outside the entry: the
// environment (secrets live there) and the network. A template using one
// is a configuration error, not a function silently missing.
var forbiddenFuncs = map[string]string{
	"env":           "reads the environment",
	"expandenv":     "reads the environment",
	"getHostByName": "resolves host names",
}

// TemplateFuncs returns the functions of a template body: sprig's, minus
// forbiddenFuncs, plus json (any value as JSON) and jsonString (its
// argument as text, as a JSON string literal).
func TemplateFuncs() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	for name := range forbiddenFuncs {
		delete(funcs, name)
	}
	funcs["json"] = templateJSON
	funcs["jsonString"] = templateJSONString
	return funcs
}

// templateJSON writes v as JSON without escaping <, > and &, which JSON
// does not need: a receiver shows what the entry holds.
func templateJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// templateJSONString makes v text (nil is "") and quotes it as a JSON
// string, ready to go between a template's JSON punctuation.
func templateJSONString(v any) (string, error) {
	var s string
	switch v := v.(type) {
	case nil:
	case string:
		s = v
	case fmt.Stringer:
		s = v.String()
	default:
		s = fmt.Sprint(v)
	}
	return templateJSON(s)
}

// ParseTemplate parses a template body named name (its file name, shown in
// errors with line and column). It fails on a syntax error, an unknown
// function, or one of the forbidden ones.
func ParseTemplate(name, text string) (*template.Template, error) {
	funcs := TemplateFuncs()
	for f := range forbiddenFuncs {
		funcs[f] = func(...any) string { return "" } // parsed, to be reported below
	}
	t, err := template.New(name).Option("missingkey=default").Funcs(funcs).Parse(text)
	if err != nil {
		return nil, err
	}
	for _, tt := range t.Templates() {
		if tt.Tree == nil || tt.Tree.Root == nil {
			continue
		}
		if err := checkForbidden(tt.Tree, tt.Tree.Root); err != nil {
			return nil, err
		}
	}
	return t.Funcs(TemplateFuncs()), nil
}

// checkForbidden walks the parse tree for a use of a forbidden function.
func checkForbidden(tree *parse.Tree, n parse.Node) error {
	var err error
	walkTemplate(n, func(n parse.Node) {
		id, ok := n.(*parse.IdentifierNode)
		if !ok || err != nil {
			return
		}
		if why, bad := forbiddenFuncs[id.Ident]; bad {
			loc, _ := tree.ErrorContext(id)
			err = fmt.Errorf("template: %s: function %q %s: not available in templates", loc, id.Ident, why)
		}
	})
	return err
}

// walkTemplate calls fn on n and every node under it. Branches that are
// absent are typed nil pointers, skipped by branch.
func walkTemplate(n parse.Node, fn func(parse.Node)) {
	fn(n)
	var kids []parse.Node
	branch := func(p *parse.PipeNode, lists ...*parse.ListNode) {
		if p != nil {
			kids = append(kids, p)
		}
		for _, l := range lists {
			if l != nil {
				kids = append(kids, l)
			}
		}
	}
	switch n := n.(type) {
	case *parse.ListNode:
		kids = append(kids, n.Nodes...)
	case *parse.ActionNode:
		branch(n.Pipe)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			kids = append(kids, c)
		}
	case *parse.CommandNode:
		kids = append(kids, n.Args...)
	case *parse.IfNode:
		branch(n.Pipe, n.List, n.ElseList)
	case *parse.RangeNode:
		branch(n.Pipe, n.List, n.ElseList)
	case *parse.WithNode:
		branch(n.Pipe, n.List, n.ElseList)
	case *parse.TemplateNode:
		branch(n.Pipe)
	case *parse.ChainNode:
		kids = append(kids, n.Node)
	}
	for _, k := range kids {
		walkTemplate(k, fn)
	}
}

// maxExprNodes bounds the size of a filter expression, and with it the cost
// of evaluating one (the VM's memory budget bounds what loops allocate).
const maxExprNodes = 500

// disabledExprBuiltins reach outside the entry: the clock.
var disabledExprBuiltins = []string{"now"}

// CompileExpr compiles a filter expression: a boolean over the decoded
// entry, whose top-level fields are its variables. A syntax error gives the
// library's message with line and column.
func CompileExpr(src string) (*vm.Program, error) {
	opts := []expr.Option{expr.AsBool(), expr.MaxNodes(maxExprNodes)}
	for _, b := range disabledExprBuiltins {
		opts = append(opts, expr.DisableBuiltin(b))
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		return nil, exprError(err)
	}
	if err := checkCalls(p); err != nil {
		return nil, exprError(err)
	}
	return p, nil
}

// checkCalls rejects a call of anything but a builtin: the expression's
// variables are decoded JSON, which holds no function, so such a call can
// only fail on every entry (`now()` with the clock taken away, a typo).
func checkCalls(p *vm.Program) error {
	var call *ast.CallNode
	ast.Find(p.Node(), func(n ast.Node) bool {
		if c, ok := n.(*ast.CallNode); ok && call == nil {
			call = c // the innermost: the walk visits children first
		}
		return false
	})
	if call == nil {
		return nil
	}
	what := "a value of the entry"
	if id, ok := call.Callee.(*ast.IdentifierNode); ok {
		what = id.Value
	}
	e := &file.Error{Location: call.Location(), Message: fmt.Sprintf("%s is not a function expressions may call", what)}
	return e.Bind(p.Source())
}

// exprError keeps the library's message and position, on one line: the
// snippet under it would break `check`'s one problem per line.
func exprError(err error) error {
	if fe, ok := err.(*file.Error); ok && fe.Snippet != "" {
		return fmt.Errorf("%s (line %d, column %d)", fe.Message, fe.Line, fe.Column+1)
	}
	return err
}
