package catalog

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

// Filter selects cases. The zero Filter selects everything.
type Filter struct {
	terms []func(Case) bool
	text  string
}

// ParseFilter reads a filter: space-separated terms, all of which must match a case.
//
//	offline            id contains "offline" (a term with * ? [ is a glob on the whole id)
//	multi-*            id glob
//	re:^reset-         regular expression on the id
//	tag:manage         a tag (glob); tag:manage,offline = either
//	windows:<10-1909   Windows versions, as in a scenario's windows field
//	!tag:unsupported   negation of any term
func ParseFilter(s string) (Filter, error) {
	f := Filter{text: strings.TrimSpace(s)}
	for _, t := range strings.Fields(s) {
		neg := strings.HasPrefix(t, "!")
		t = strings.TrimPrefix(t, "!")
		m, err := parseFilterTerm(t)
		if err != nil {
			return Filter{}, fmt.Errorf("filter %q: %w", t, err)
		}
		if neg {
			inner := m
			m = func(c Case) bool { return !inner(c) }
		}
		f.terms = append(f.terms, m)
	}
	return f, nil
}

func parseFilterTerm(t string) (func(Case) bool, error) {
	switch {
	case strings.HasPrefix(t, "re:"):
		re, err := regexp.Compile(strings.TrimPrefix(t, "re:"))
		if err != nil {
			return nil, err
		}
		return func(c Case) bool { return re.MatchString(c.ID) }, nil
	case strings.HasPrefix(t, "tag:"):
		pats := strings.Split(strings.TrimPrefix(t, "tag:"), ",")
		for _, p := range pats {
			if _, err := path.Match(p, ""); err != nil {
				return nil, err
			}
		}
		return func(c Case) bool {
			for _, p := range pats {
				for _, tag := range c.Tags {
					if ok, _ := path.Match(p, tag); ok {
						return true
					}
				}
			}
			return false
		}, nil
	case strings.HasPrefix(t, "windows:"), strings.HasPrefix(t, "version:"):
		_, expr, _ := strings.Cut(t, ":")
		vs, err := ParseVersions(expr)
		if err != nil {
			return nil, err
		}
		return func(c Case) bool { return vs.Has(c.Version) }, nil
	case strings.ContainsAny(t, "*?["):
		if _, err := path.Match(t, ""); err != nil {
			return nil, err
		}
		return func(c Case) bool { ok, _ := path.Match(t, c.ID); return ok }, nil
	default:
		return func(c Case) bool { return strings.Contains(c.ID, t) }, nil
	}
}

// Match reports whether c passes every term.
func (f Filter) Match(c Case) bool {
	for _, t := range f.terms {
		if !t(c) {
			return false
		}
	}
	return true
}

// String is the filter as given.
func (f Filter) String() string { return f.text }

// Select returns the cases of the catalog that pass f, in catalog order.
func (c *Catalog) Select(f Filter) []Case {
	var out []Case
	for _, cs := range c.Cases() {
		if f.Match(cs) {
			out = append(out, cs)
		}
	}
	return out
}
