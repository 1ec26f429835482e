package sink

import (
	"strings"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/config"
)

// Filter decides which entries a webhook gets (SPEC §2.2, §2.3). It is built
// once per webhook and, without an expression, Match allocates nothing,
// since it runs on every entry of the stream for every webhook.
type Filter struct {
	// ops has one bit per operation; restrictOps false means every one.
	ops         uint8
	restrictOps bool

	// anyType is true for an empty objectTypes list or one holding "*".
	anyType      bool
	typeExact    []string
	typePrefix   []string
	typeExcluded []string
	baseOnly     bool
	orgIncluded  orgSet
	orgExcluded  orgSet
	// expr is the filter expression, nil for none; evaluated last, as it
	// is the only part that decodes the entry.
	expr *exprFilter
}

// orgSet is an organisation list: "*" is every entry, else an item matches an
// entry's organisation name or id.
type orgSet struct {
	all   bool
	items []string
}

const (
	opCreation uint8 = 1 << iota
	opUpdate
	opDelete
)

// NewFilter precomputes f. Empty lists select everything; an empty included
// organisation list is read as TheHive 4's default ["*"]. f.Expr compiled
// when the configuration was loaded (config.CompileExpr); one that does not
// is a bug of the caller, and panics.
func NewFilter(f config.Filter) *Filter {
	flt := &Filter{
		restrictOps: len(f.Operations) > 0,
		anyType:     len(f.ObjectTypes) == 0,
		baseOnly:    f.BaseOnly,
		orgIncluded: newOrgSet(f.IncludedOrganisations),
		orgExcluded: newOrgSet(f.ExcludedOrganisations),
	}
	if len(f.IncludedOrganisations) == 0 {
		flt.orgIncluded.all = true
	}
	for _, op := range f.Operations {
		flt.ops |= opBit(config.NormaliseOperation(op))
	}
	for _, t := range f.ObjectTypes {
		flt.addType(t)
	}
	for _, t := range f.ExcludeObjectTypes {
		if t != "" {
			flt.typeExcluded = append(flt.typeExcluded, t)
		}
	}
	if strings.TrimSpace(f.Expr) != "" {
		x, err := newExprFilter(f.Expr)
		if err != nil {
			panic("sink: filter expr did not compile, config.Load checks it: " + err.Error())
		}
		flt.expr = x
	}
	return flt
}

func (f *Filter) addType(t string) {
	switch {
	case t == "*":
		f.anyType = true
	case strings.HasSuffix(t, "*"):
		f.typePrefix = append(f.typePrefix, strings.TrimSuffix(t, "*"))
	case t != "":
		f.typeExact = append(f.typeExact, t)
	}
}

func newOrgSet(list []string) orgSet {
	var s orgSet
	for _, item := range list {
		switch item {
		case "*":
			s.all = true
		case "":
		default:
			s.items = append(s.items, item)
		}
	}
	return s
}

// opBit is 0 for an operation that is not one of the three: a filter
// listing only such names matches nothing rather than everything.
func opBit(op string) uint8 {
	switch op {
	case audit.Creation:
		return opCreation
	case audit.Update:
		return opUpdate
	case audit.Delete:
		return opDelete
	}
	return 0
}

// Match reports whether the webhook gets e. Object types compare without
// regard to case, because TheHive 3 writes `case_task` where TheHive 4 and 5
// write `Task`/`Case`: a filter written for one still reads the other's
// `case`. Organisations compare exactly, and an excluded one always wins.
func (f *Filter) Match(e *audit.Entry) bool {
	if f.restrictOps && f.ops&opBit(e.Operation) == 0 {
		return false
	}
	if f.baseOnly && !e.Base {
		return false
	}
	if !f.matchType(e.ObjectType) || f.excludedType(e.ObjectType) || !f.matchOrganisation(e) {
		return false
	}
	return f.expr == nil || f.expr.match(e)
}

// excludedType compares exactly, in any case, as objectTypes does.
func (f *Filter) excludedType(t string) bool {
	for _, x := range f.typeExcluded {
		if strings.EqualFold(t, x) {
			return true
		}
	}
	return false
}

func (f *Filter) matchType(t string) bool {
	if f.anyType {
		return true
	}
	for _, x := range f.typeExact {
		if strings.EqualFold(t, x) {
			return true
		}
	}
	for _, p := range f.typePrefix {
		if len(t) >= len(p) && strings.EqualFold(t[:len(p)], p) {
			return true
		}
	}
	return false
}

// matchOrganisation follows TheHive 4: excluded wins, and an entry without
// an organisation (TheHive 3) passes only an included "*".
func (f *Filter) matchOrganisation(e *audit.Entry) bool {
	if f.orgExcluded.has(e) {
		return false
	}
	return f.orgIncluded.has(e)
}

func (s *orgSet) has(e *audit.Entry) bool {
	if s.all {
		return true
	}
	for _, item := range s.items {
		if item == e.Organisation || item == e.OrganisationID {
			return true
		}
	}
	return false
}
