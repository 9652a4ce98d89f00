package persona

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// The file check walks a persona file's YAML nodes beside the Persona type, before anything is
// decoded: every key must be a field (its yaml tag), every value of the form its field takes, every
// number one its field can hold and every text free of control characters. It reports all it finds
// with lines, in the words of YAML; afterwards decoding cannot fail. Validate then checks the
// decoded persona (ranges, combinations), and Parse puts each of its problems at the line where
// the file wrote the field.

var (
	personaType     = reflect.TypeFor[Persona]()
	aaguidType      = reflect.TypeFor[AAGUID]()
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
)

type checker struct {
	problems []Problem
	lines    map[string]int // the line of every field the file wrote, by YAML path
}

func (c *checker) fail(n *yaml.Node, field, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.problems = append(c.problems, Problem{Line: line, Field: field, Msg: fmt.Sprintf(format, a...)})
}

// lineOf locates a problem Validate found: the line of its field when the file wrote it; 0 when
// the value came from the base persona (the message names the field).
func (c *checker) lineOf(p Problem) int {
	if p.Field == "" {
		return 0
	}
	return c.lines[p.Field]
}

// base returns the file's `base:` value and its line.
func (c *checker) base(root *yaml.Node) (string, int) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "base" {
			return root.Content[i+1].Value, root.Content[i].Line
		}
	}
	return "", 0
}

// mapping checks a struct's mapping; top allows the file-only key `base`.
func (c *checker) mapping(n *yaml.Node, t reflect.Type, path string, top bool) {
	if n.Kind != yaml.MappingNode {
		c.fail(n, path, "want a mapping (name: value lines), got %s", describe(n))
		return
	}
	fields := yamlFields(t)
	seen := map[string]int{}
	kept := n.Content[:0:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		before := len(c.problems)
		c.pair(k, v, fields, seen, t, path, top)
		if len(c.problems) == before {
			kept = append(kept, k, v)
		}
	}
	// What was wrong is left out, so that the rest can still be decoded and validated: one run
	// reports the problems of the whole file.
	n.Content = kept
}

func (c *checker) pair(k, v *yaml.Node, fields map[string]fieldInfo, seen map[string]int, t reflect.Type, path string, top bool) {
	if k.Kind != yaml.ScalarNode {
		c.fail(k, path, "a field name must be plain text, got %s", describe(k))
		return
	}
	full := join(path, k.Value)
	if prev, dup := seen[k.Value]; dup {
		c.fail(k, full, "given twice (first at line %d)", prev)
		return
	}
	seen[k.Value] = k.Line
	if top && k.Value == "base" {
		c.lines[full] = k.Line
		if v.Kind != yaml.ScalarNode || isNull(v) {
			c.fail(v, full, "want the name of a built-in persona (%s), got %s", strings.Join(Names(), ", "), describe(v))
		}
		return
	}
	f, ok := fields[k.Value]
	if !ok {
		c.fail(k, full, "unknown field%s", suggest(k.Value, path, t, top))
		return
	}
	c.lines[full] = k.Line
	c.value(v, f.Type, full, full)
}

// value checks one value of type t; field names it in messages ("algorithms[1]"), rangePath in
// the number table ("algorithms").
func (c *checker) value(n *yaml.Node, t reflect.Type, field, rangePath string) {
	if n.Kind == yaml.AliasNode {
		c.fail(n, field, "aliases (*%s) are not supported in persona files: write the value out", n.Value)
		return
	}
	if isNull(n) {
		c.fail(n, field, "want %s, got nothing", want(t))
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			c.fail(n, field, "want %s, got %s", want(t), describe(n))
			return
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			c.fail(n, field, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		c.mapping(n, t, field, false)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.fail(n, field, "want %s, got %s", want(t), describe(n))
			return
		}
		for i, e := range n.Content {
			ef := fmt.Sprintf("%s[%d]", field, i)
			c.lines[ef] = e.Line
			c.value(e, t.Elem(), ef, rangePath)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			c.fail(n, field, "want true or false, got %s", describe(n))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.fail(n, field, "want text, got %s", describe(n))
			return
		}
		if msg := textProblem(rangePath, n.Value); msg != "" {
			c.fail(n, field, "%s", msg)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		c.number(n, t, field)
	default:
		c.fail(n, field, "fidolab cannot read this field (a %s): please report it", t.Kind())
	}
}

// number checks that n is a whole number its field can hold. Its range is checked after decoding,
// by Validate with the range table (numbers.go), where the persona is whole: some ranges apply to
// a CTAP2 persona only.
func (c *checker) number(n *yaml.Node, t reflect.Type, field string) {
	var v int64
	switch {
	case n.Kind != yaml.ScalarNode:
		c.fail(n, field, "want a number, got %s", describe(n))
		return
	case n.ShortTag() == "!!float" && digitsOnly.MatchString(n.Value):
		c.fail(n, field, "%s is too large a number", n.Value)
		return
	case n.ShortTag() == "!!float":
		c.fail(n, field, "want a whole number, got %s", n.Value)
		return
	case n.ShortTag() != "!!int":
		c.fail(n, field, "want a number, got %s", describe(n))
		return
	case n.Decode(&v) != nil:
		c.fail(n, field, "%s is too large a number", n.Value)
		return
	}
	lo, hi := typeRange(t)
	if v < lo || v > hi {
		c.fail(n, field, "%d is outside %d..%d", v, lo, hi)
	}
}

// digitsOnly is an integer YAML read as a float because no integer holds it.
var digitsOnly = regexp.MustCompile(`^[-+]?[0-9_]+$`)

// typeRange is the values an integer type holds, within int64.
func typeRange(t reflect.Type) (int64, int64) {
	bits := t.Bits()
	if t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64 {
		if bits >= 63 {
			return 0, 1<<63 - 1
		}
		return 0, 1<<bits - 1
	}
	if bits == 64 {
		return -1 << 63, 1<<63 - 1
	}
	return -1 << (bits - 1), 1<<(bits-1) - 1
}

// want says in YAML's words what a value of type t looks like.
func want(t reflect.Type) string {
	if t == aaguidType {
		return "a UUID like 00112233-4455-6677-8899-aabbccddeeff"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a mapping (name: value lines)"
	case reflect.Slice:
		return fmt.Sprintf("a list of %s like [a, b] ([] for none)", plural(t.Elem()))
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return `text ("" for none)`
	}
	return "a number"
}

func plural(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "texts"
	case reflect.Bool:
		return "true/false values"
	case reflect.Struct:
		return "mappings"
	}
	return "numbers"
}

// describe names what a node is, for "want X, got Y".
func describe(n *yaml.Node) string {
	switch {
	case n == nil || isNull(n):
		return "nothing"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.AliasNode:
		return "an alias (*" + n.Value + ")"
	}
	v := n.Value
	if utf8.RuneCountInString(v) > 40 {
		v = string([]rune(v)[:40]) + "…"
	}
	return fmt.Sprintf("%q", v)
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// textProblem checks a text value: no control characters anywhere (they would reach terminals,
// logs and USB descriptors), and the length limits of the fields that have one.
func textProblem(path, s string) string {
	if !utf8.ValidString(s) {
		return "not valid UTF-8"
	}
	control := unicode.IsControl
	if path == "description" { // a YAML block scalar (description: |) may run over several lines
		control = func(r rune) bool { return r != '\n' && r != '\t' && unicode.IsControl(r) }
	}
	if i := strings.IndexFunc(s, control); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return fmt.Sprintf("control character %U at byte %d: write plain text", r, i)
	}
	if l, ok := textLimits[path]; ok {
		if n := l.measure(s); n > l.max {
			return fmt.Sprintf("%d %s long, at most %d (%s)", n, l.unit, l.max, l.why)
		}
	}
	return ""
}

// textLimits bound the texts whose consumer has a limit; a longer one would be cut short.
var textLimits = map[string]textLimit{
	"name":             {64, "characters", "it names the key in listings, traces and state files", runeCount},
	"hid.manufacturer": {126, "UTF-16 units", "a USB string descriptor", utf16Len},
	"hid.product":      {126, "UTF-16 units", "a USB string descriptor", utf16Len},
	"hid.serial":       {126, "UTF-16 units", "a USB string descriptor", utf16Len},
}

type textLimit struct {
	max     int
	unit    string
	why     string
	measure func(string) int
}

func runeCount(s string) int { return utf8.RuneCountInString(s) }

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

type fieldInfo struct {
	Type  reflect.Type
	Index int
}

var fieldCache sync.Map // reflect.Type → map[string]fieldInfo

// yamlFields maps a struct's YAML names to its fields.
func yamlFields(t reflect.Type) map[string]fieldInfo {
	if m, ok := fieldCache.Load(t); ok {
		return m.(map[string]fieldInfo)
	}
	m := map[string]fieldInfo{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = fieldInfo{Type: f.Type, Index: i}
	}
	fieldCache.Store(t, m)
	return m
}

// leafPaths lists every field's YAML path under t (structs are walked, not listed).
func leafPaths(t reflect.Type, path string) []string {
	var out []string
	for name, f := range yamlFields(t) {
		p := join(path, name)
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(unmarshalerType) {
			out = append(out, leafPaths(f.Type, p)...)
			continue
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// suggest finds what a misspelt or misplaced key was meant to be: a field of the same mapping
// spelt alike, or a field of that name in another mapping.
func suggest(key, path string, t reflect.Type, top bool) string {
	var names []string
	for n := range yamlFields(t) {
		names = append(names, n)
	}
	if top {
		names = append(names, "base")
	}
	slices.Sort(names)
	best, bestD := "", 1<<30
	for _, n := range names {
		if d := distance(strings.ToLower(key), strings.ToLower(n)); d < bestD {
			best, bestD = n, d
		}
	}
	if bestD <= max(2, len(key)/4) {
		return fmt.Sprintf(" (did you mean %s?)", best)
	}
	for _, p := range leafPaths(personaType, "") {
		last := p[strings.LastIndexByte(p, '.')+1:]
		if strings.EqualFold(last, key) && p != join(path, key) {
			return fmt.Sprintf(" (it belongs elsewhere: %s)", p)
		}
	}
	if len(names) <= 16 {
		return fmt.Sprintf(" (known: %s)", strings.Join(names, ", "))
	}
	return " (the fields are listed in docs/personas.md)"
}

// distance is the Levenshtein edit distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
