package catalog

import (
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/scenarios/host"
)

// VersionSet is a set of Windows versions, kept in host.Versions order.
type VersionSet []host.Version

// Has reports whether v is in the set.
func (s VersionSet) Has(v host.Version) bool {
	for _, x := range s {
		if x.Name == v.Name {
			return true
		}
	}
	return false
}

// Names lists the versions' names.
func (s VersionSet) Names() []string {
	n := make([]string, len(s))
	for i, v := range s {
		n[i] = v.Name
	}
	return n
}

// ParseVersions reads a version expression: "all"; alternatives separated by commas, each a
// space-separated conjunction of terms; a term is a version name ("10-1909") or a comparison with
// one (">=10-1903", "<10-2004", ">11-22H2", "<=10-21H2", "=10-1809").
// ">=10-1903 <10-2004, 11-24H2" is 1903, 1909 and 11 24H2.
func ParseVersions(expr string) (VersionSet, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, fmt.Errorf("empty version expression (want all, a version like 10-1909, or a range like >=10-1903)")
	}
	if strings.EqualFold(expr, "all") {
		return append(VersionSet(nil), host.Versions...), nil
	}
	in := map[string]bool{}
	for _, alt := range strings.Split(expr, ",") {
		terms := strings.Fields(alt)
		if len(terms) == 0 {
			return nil, fmt.Errorf("%q: empty alternative", expr)
		}
		match := make([]bool, len(host.Versions))
		for i := range match {
			match[i] = true
		}
		for _, t := range terms {
			pred, err := parseTerm(t)
			if err != nil {
				return nil, err
			}
			for i, v := range host.Versions {
				match[i] = match[i] && pred(v)
			}
		}
		for i, v := range host.Versions {
			if match[i] {
				in[v.Name] = true
			}
		}
	}
	var out VersionSet
	for _, v := range host.Versions {
		if in[v.Name] {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q selects no Windows version", expr)
	}
	return out, nil
}

// parseTerm turns one comparison into a predicate on versions.
func parseTerm(t string) (func(host.Version) bool, error) {
	op := ""
	for _, o := range []string{">=", "<=", ">", "<", "="} {
		if strings.HasPrefix(t, o) {
			op = o
			break
		}
	}
	v, err := host.ParseVersion(strings.TrimPrefix(t, op))
	if err != nil {
		return nil, err
	}
	switch op {
	case ">=":
		return func(x host.Version) bool { return x.Rank >= v.Rank }, nil
	case "<=":
		return func(x host.Version) bool { return x.Rank <= v.Rank }, nil
	case ">":
		return func(x host.Version) bool { return x.Rank > v.Rank }, nil
	case "<":
		return func(x host.Version) bool { return x.Rank < v.Rank }, nil
	default:
		return func(x host.Version) bool { return x.Rank == v.Rank }, nil
	}
}
