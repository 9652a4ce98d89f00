package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parser walks yaml.Nodes, so every complaint carries the line of the node it is about, and
// collects all complaints of a file instead of stopping at the first.
type parser struct {
	file string
	errs []error
}

func (p *parser) fail(n *yaml.Node, field, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (p *parser) err() error { return errors.Join(p.errs...) }

// fieldSet is a mapping's values by key, with the mapping node for "missing field" complaints.
type fieldSet struct {
	node *yaml.Node
	vals map[string]*yaml.Node
}

func (f fieldSet) get(k string) *yaml.Node { return f.vals[k] }

// fields checks that n is a mapping whose keys are all in known and appear once.
func (p *parser) fields(n *yaml.Node, path string, known ...string) (fieldSet, bool) {
	fs := fieldSet{node: n, vals: map[string]*yaml.Node{}}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping (key: value lines), got %s", kindName(n))
		return fs, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(path, k.Value)
		switch {
		case k.Kind != yaml.ScalarNode:
			p.fail(k, path, "keys must be plain names")
		case !slices.Contains(known, k.Value):
			p.fail(k, name, "unknown field %q (known: %s)", k.Value, strings.Join(known, ", "))
		case fs.vals[k.Value] != nil:
			p.fail(k, name, "field given twice")
		default:
			fs.vals[k.Value] = v
		}
	}
	return fs, true
}

// required reports a missing field at the mapping's line.
func (p *parser) required(fs fieldSet, path, key string) *yaml.Node {
	v := fs.get(key)
	if v == nil {
		p.fail(fs.node, join(path, key), "required field missing")
	}
	return v
}

func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "want a text value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

func (p *parser) boolean(n *yaml.Node, field string) (bool, bool) {
	if n.Kind == yaml.ScalarNode {
		switch strings.ToLower(n.Value) {
		case "true", "yes", "on":
			return true, true
		case "false", "no", "off":
			return false, true
		}
	}
	p.fail(n, field, "want true or false, got %s", describe(n))
	return false, false
}

// strList accepts a sequence of texts or a single text (one item).
func (p *parser) strList(n *yaml.Node, field string) ([]string, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value}, true
	}
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "want a list, got %s", kindName(n))
		return nil, false
	}
	out := make([]string, 0, len(n.Content))
	ok := true
	for i, c := range n.Content {
		s, good := p.str(c, fmt.Sprintf("%s[%d]", field, i))
		ok = ok && good
		out = append(out, s)
	}
	return out, ok
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return "text " + strconv.Quote(n.Value)
	}
	return "nothing"
}

func describe(n *yaml.Node) string { return kindName(n) }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// syntaxLine digs the line number out of a yaml syntax error, which has no structured form.
func syntaxLine(err error) int {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
