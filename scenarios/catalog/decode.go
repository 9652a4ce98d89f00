package catalog

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// A catalog file is decoded by go.yaml.in/yaml/v3 into the structs of this file; parse.go checks
// what they mean and builds Scenarios. Two things yaml does not give are added here, so that every
// problem of a file is reported at once, each with its line:
//
//   - Known-field checking with lines. yaml's Decoder.KnownFields reports an unknown key only as
//     text, and yaml.Node.Decode cannot enable it; so each struct's UnmarshalYAML (decodeMapping)
//     checks the keys against the struct's yaml tags and keeps the nodes of unknown, repeated and
//     empty ones.
//   - Values that keep their node. text, flag and texts decode like string, bool and []string but
//     remember their node, so a complaint about the value (a list where text belongs, an unknown
//     join type) names the line it was written on. Nothing fails while decoding; report does the
//     complaining, field by field, with the field's tag as its name.
//
// A field stays a plain yaml.Node only where its form depends on its content (an expect's three
// forms, an action's arguments, an outcome's kind).

type scenarioDoc struct {
	mapping
	ID        text          `yaml:"id" catalog:"required"`
	Title     text          `yaml:"title" catalog:"required"`
	Section   text          `yaml:"section"`
	Doc       text          `yaml:"doc" catalog:"required"`
	Supported flag          `yaml:"supported" catalog:"required"`
	Tags      texts         `yaml:"tags"`
	Windows   texts         `yaml:"windows"`
	Host      hostDoc       `yaml:"host" catalog:"required"`
	Key       keyDoc        `yaml:"key"`
	Steps     list[stepDoc] `yaml:"steps" catalog:"required"`
	Report    reportDoc     `yaml:"report"`
}

// reportDoc is a field report's provenance (scenarios tagged field-report).
type reportDoc struct {
	mapping
	Source  text  `yaml:"source" catalog:"required"`
	Quote   text  `yaml:"quote" catalog:"required"`
	Windows text  `yaml:"windows" catalog:"required"`
	Trigger text  `yaml:"trigger" catalog:"required"`
	Sees    text  `yaml:"sees" catalog:"required"`
	Events  texts `yaml:"events"`
	Match   texts `yaml:"match"`
}

func (d *reportDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain reportDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

type hostDoc struct {
	mapping
	Join                    text      `yaml:"join" catalog:"required"`
	Enable                  text      `yaml:"enable" catalog:"required"`
	SharedPC                flag      `yaml:"sharedPC"`
	ProvisionedBeforePolicy flag      `yaml:"provisionedBeforePolicy"`
	Online                  flag      `yaml:"online"`
	Tenant                  tenantDoc `yaml:"tenant"`
	OnPremises              onPremDoc `yaml:"onPremises"`
	HelloForBusiness        text      `yaml:"helloForBusiness"`
	Probes                  texts     `yaml:"probes"`
}

type tenantDoc struct {
	mapping
	EnforceAttestation  flag  `yaml:"enforceAttestation"`
	AAGUIDAllow         texts `yaml:"aaguidAllow"`
	AAGUIDBlock         texts `yaml:"aaguidBlock"`
	CounterMustIncrease flag  `yaml:"counterMustIncrease"`
}

type onPremDoc struct {
	mapping
	KerberosServer flag `yaml:"kerberosServer"`
	PatchedDCs     flag `yaml:"patchedDCs"`
}

type keyDoc struct {
	mapping
	Persona  text  `yaml:"persona"`
	PIN      text  `yaml:"pin"`
	Accounts texts `yaml:"accounts"`
}

type stepDoc struct {
	mapping
	Action  text      `yaml:"action" catalog:"required"`
	Account text      `yaml:"account"`
	PIN     text      `yaml:"pin"`
	NewPIN  text      `yaml:"newPin"`
	Pick    text      `yaml:"pick"`
	Args    yaml.Node `yaml:"args"`
	Expect  yaml.Node `yaml:"expect" catalog:"required"`
	Reason  text      `yaml:"reason"`
}

// entryDoc is one item of an expect list.
type entryDoc struct {
	mapping
	When    whenDoc   `yaml:"when"`
	Outcome yaml.Node `yaml:"outcome" catalog:"required"`
	Reason  text      `yaml:"reason"`
}

type whenDoc struct {
	mapping
	Windows texts `yaml:"windows" catalog:"required"`
}

// The type plain conversions drop the method, so yaml fills the fields after decodeMapping's check.

func (d *scenarioDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain scenarioDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *hostDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain hostDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *tenantDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain tenantDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *onPremDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain onPremDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *keyDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain keyDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *stepDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain stepDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *entryDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain entryDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

func (d *whenDoc) UnmarshalYAML(n *yaml.Node) error {
	type plain whenDoc
	return decodeMapping(n, &d.mapping, (*plain)(d))
}

// mapping is what decoding learned about a mapping besides its fields: its node (nil when the file
// left it out), its unknown or repeated keys, and its keys given no value.
type mapping struct {
	node  *yaml.Node
	keys  []keyProblem
	empty map[string]*yaml.Node
}

type keyProblem struct {
	at    *yaml.Node
	field string
	msg   string
}

func (m *mapping) meta() *mapping { return m }

// given reports whether the file wrote this mapping.
func (m *mapping) given() bool { return m.node != nil }

// doc is a decoded mapping: one of the *Doc structs.
type doc interface{ meta() *mapping }

// decodeMapping checks n's keys against the yaml tags of the struct into points to, then lets yaml
// fill the struct from the keys that passed. A node that is not a mapping is left for report.
func decodeMapping(n *yaml.Node, m *mapping, into any) error {
	m.node = n
	if n.Kind != yaml.MappingNode {
		return nil
	}
	fs := structFields(reflect.TypeOf(into).Elem())
	kept := *n
	kept.Content = nil
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field, known := fs.index[k.Value]
		switch {
		case k.Kind != yaml.ScalarNode:
			m.keys = append(m.keys, keyProblem{k, "", "keys must be plain names"})
		case !known:
			m.keys = append(m.keys, keyProblem{k, k.Value, fmt.Sprintf("unknown field %q (known: %s)", k.Value, strings.Join(fs.names, ", "))})
		case seen[k.Value]:
			m.keys = append(m.keys, keyProblem{k, k.Value, "field given twice"})
		case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null" && !fs.isNode[field]:
			// yaml decodes nothing into a struct for an empty value: keep its line for report.
			seen[k.Value] = true
			if m.empty == nil {
				m.empty = map[string]*yaml.Node{}
			}
			m.empty[k.Value] = v
		default:
			seen[k.Value] = true
			kept.Content = append(kept.Content, k, v)
		}
	}
	if err := kept.Decode(into); err != nil {
		// Every field decodes without failing and Parse refuses aliases, so none is expected here.
		m.keys = append(m.keys, keyProblem{n, "", err.Error()})
	}
	return nil
}

// fields are the yaml keys of a *Doc struct in declaration order, and where each field is.
type fields struct {
	names    []string
	index    map[string]int
	required map[string]bool
	isNode   map[int]bool // a yaml.Node field, which keeps an empty value as a null node
}

var fieldCache sync.Map // reflect.Type → fields

func structFields(t reflect.Type) fields {
	if v, ok := fieldCache.Load(t); ok {
		return v.(fields)
	}
	fs := fields{index: map[string]int{}, required: map[string]bool{}, isNode: map[int]bool{}}
	for i := range t.NumField() {
		f := t.Field(i)
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); f.IsExported() && name != "" {
			fs.names = append(fs.names, name)
			fs.index[name] = i
			fs.required[name] = f.Tag.Get("catalog") == "required"
			fs.isNode[i] = f.Type == reflect.TypeFor[yaml.Node]()
		}
	}
	fieldCache.Store(t, fs)
	return fs
}

// value is a field that knows whether the file gave it and whether its form was right.
type value interface {
	given() bool
	want() string      // the form it takes, for "want …, got …"
	wrong() []badValue // the parts of the wrong form
}

// badValue is a value, or an item of a list, of the wrong form.
type badValue struct {
	at   *yaml.Node
	sub  string // "" or the item's index, "[2]"
	want string
}

// text is a scalar: a name, a PIN, a sentence.
type text struct {
	V    string
	node *yaml.Node
}

func (t *text) UnmarshalYAML(n *yaml.Node) error {
	t.node = n
	if n.Kind == yaml.ScalarNode {
		t.V = n.Value
	}
	return nil
}

func (t *text) given() bool  { return t.node != nil }
func (t *text) want() string { return "a text value" }
func (t *text) wrong() []badValue {
	if t.node != nil && t.node.Kind != yaml.ScalarNode {
		return []badValue{{t.node, "", t.want()}}
	}
	return nil
}

// flag is a boolean; YAML 1.1's yes/no/on/off count too, as hand-written files use them.
type flag struct {
	V    bool
	node *yaml.Node
	bad  bool
}

func (f *flag) UnmarshalYAML(n *yaml.Node) error {
	f.node = n
	switch strings.ToLower(n.Value) {
	case "true", "yes", "on":
		f.V = true
	case "false", "no", "off":
	default:
		f.bad = true
	}
	f.bad = f.bad || n.Kind != yaml.ScalarNode
	return nil
}

func (f *flag) given() bool  { return f.node != nil }
func (f *flag) want() string { return "true or false" }
func (f *flag) wrong() []badValue {
	if f.bad {
		return []badValue{{f.node, "", f.want()}}
	}
	return nil
}

// texts is a list of scalars; a single scalar is a list of one.
type texts struct {
	V     []string
	node  *yaml.Node
	items []*yaml.Node // the node of each of V, for complaints about one of them
}

func (t *texts) UnmarshalYAML(n *yaml.Node) error {
	t.node = n
	switch n.Kind {
	case yaml.ScalarNode:
		t.V, t.items = []string{n.Value}, []*yaml.Node{n}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			t.V, t.items = append(t.V, c.Value), append(t.items, c)
		}
	}
	return nil
}

func (t *texts) given() bool  { return t.node != nil }
func (t *texts) want() string { return "a list" }
func (t *texts) wrong() []badValue {
	if t.node == nil || t.node.Kind == yaml.ScalarNode {
		return nil
	}
	if t.node.Kind != yaml.SequenceNode {
		return []badValue{{t.node, "", t.want()}}
	}
	var bad []badValue
	for i, c := range t.items {
		if c.Kind != yaml.ScalarNode || c.ShortTag() == "!!null" {
			bad = append(bad, badValue{c, fmt.Sprintf("[%d]", i), "a text value"})
		}
	}
	return bad
}

// line is where item i of the list was written (the list's line for a single scalar).
func (t *texts) line(i int) *yaml.Node {
	if i < len(t.items) {
		return t.items[i]
	}
	return t.node
}

// list is a sequence of mappings; report checks each item as parse.go reaches it.
type list[T any] struct {
	Items []T
	node  *yaml.Node
}

func (l *list[T]) UnmarshalYAML(n *yaml.Node) error {
	l.node = n
	if n.Kind != yaml.SequenceNode {
		return nil
	}
	l.Items = make([]T, len(n.Content))
	for i, c := range n.Content {
		if err := c.Decode(&l.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

func (l *list[T]) given() bool  { return l.node != nil }
func (l *list[T]) want() string { return "a non-empty list" }
func (l *list[T]) wrong() []badValue {
	if l.node != nil && (l.node.Kind != yaml.SequenceNode || len(l.node.Content) == 0) {
		return []badValue{{l.node, "", l.want()}}
	}
	return nil
}

// parser checks decoded docs and builds Scenarios, collecting every complaint of a file, each
// with the line of the node it is about, instead of stopping at the first.
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

// report complains about everything decoding found wrong in d, a mapping the file wrote, without
// going into nested mappings: a node that is not a mapping, unknown or repeated keys, empty or
// missing required fields, values of the wrong form. It returns whether d is a mapping.
func (p *parser) report(d doc, path string) bool {
	m := d.meta()
	if m.node.Kind != yaml.MappingNode {
		p.fail(m.node, path, "want a mapping (key: value lines), got %s", kindName(m.node))
		return false
	}
	for _, k := range m.keys {
		p.fail(k.at, join(path, k.field), "%s", k.msg)
	}
	rv := reflect.ValueOf(d).Elem()
	fs := structFields(rv.Type())
	for _, name := range fs.names {
		field := join(path, name)
		f := rv.Field(fs.index[name]).Addr().Interface()
		if v := m.empty[name]; v != nil {
			want := "a mapping (key: value lines)"
			if val, ok := f.(value); ok {
				want = val.want()
			}
			p.fail(v, field, "want %s, got nothing", want)
			continue
		}
		given := false
		switch f := f.(type) {
		case value:
			given = f.given()
			for _, b := range f.wrong() {
				p.fail(b.at, field+b.sub, "want %s, got %s", b.want, kindName(b.at))
			}
		case doc:
			given = f.meta().given()
		case *yaml.Node:
			given = f.Kind != 0
		}
		if !given && fs.required[name] {
			p.fail(m.node, field, "required field missing")
		}
	}
	return true
}

// ok is a value given in the right form.
func ok(v value) bool { return v.given() && len(v.wrong()) == 0 }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		return "text " + strconv.Quote(n.Value)
	}
	return "nothing"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	if key == "" {
		return path
	}
	return path + "." + key
}

// syntaxError turns a YAML syntax error into an Error. go.yaml.in/yaml/v3 has no structured syntax
// error, only the text "yaml: line N: what"; this is the one place a line is read from text.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, found := strings.CutPrefix(msg, "line "); found {
		if num, what, found := strings.Cut(rest, ": "); found {
			if n, convErr := strconv.Atoi(num); convErr == nil {
				line, msg = n, what
			}
		}
	}
	return &Error{File: file, Line: line, Msg: msg}
}
