package trace

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// The walker locates every data item of a CBOR message by byte offset, so that the recorder can
// redact a secret in the raw reports as well as in the rendering, and render maps with parameter
// names. The fxamacker codec validates and measures each item (UnmarshalFirst); the walker only
// reads the item counts of definite-length maps and arrays from their heads (RFC 8949 §3).

// Limits for the walker: generous beside CTAP's (ctap.MaxNesting etc.), so that what a broken
// host sends is still shown rather than refused.
const (
	walkMaxDepth = 16
	walkMaxItems = 4096
)

var walkDec, _ = cbor.DecOptions{
	MaxNestedLevels:  walkMaxDepth,
	MaxArrayElements: walkMaxItems,
	MaxMapPairs:      walkMaxItems,
	DupMapKey:        cbor.DupMapKeyQuiet,
	IndefLength:      cbor.IndefLengthAllowed,
	TagsMd:           cbor.TagsAllowed,
}.DecMode()

var diagMode, _ = cbor.DiagOptions{ByteStringEncoding: cbor.ByteStringBase16Encoding, MaxNestedLevels: walkMaxDepth,
	MaxArrayElements: walkMaxItems, MaxMapPairs: walkMaxItems}.DiagMode()

// node is one data item at data[start:end] of the walked message.
type node struct {
	start, end int
	major      byte // RFC 8949 major type
	head       int  // length of the item's head: a byte or text string's content starts at start+head
	raw        []byte
	pairs      []pair // a definite-length map
	elems      []*node
}

type pair struct{ key, val *node }

// content returns the span of a byte or text string's content.
func (n *node) content() Span { return Span{n.start + n.head, n.end} }

// keyOf returns a map key as int64 or string, or nil for other kinds of key.
func (n *node) keyOf() any {
	var v any
	if walkDec.Unmarshal(n.raw, &v) != nil {
		return nil
	}
	switch k := v.(type) {
	case uint64:
		if k <= 1<<62 {
			return int64(k)
		}
	case int64, string:
		return k
	}
	return nil
}

// intValue returns an integer item's value.
func (n *node) intValue() (int64, bool) {
	var v any
	if walkDec.Unmarshal(n.raw, &v) != nil {
		return 0, false
	}
	switch k := v.(type) {
	case uint64:
		return int64(k), k <= 1<<62
	case int64:
		return k, true
	}
	return 0, false
}

var errTrailing = errors.New("trailing bytes after the CBOR item")

// walk parses one CBOR item that fills data exactly; base is data's offset in the message.
func walk(data []byte, base int) (*node, error) {
	n, rest, err := walkFirst(data, base, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return n, fmt.Errorf("%w (%d)", errTrailing, len(rest))
	}
	return n, nil
}

func walkFirst(data []byte, base, depth int) (*node, []byte, error) {
	var raw cbor.RawMessage
	rest, err := walkDec.UnmarshalFirst(data, &raw)
	if err != nil {
		return nil, nil, err
	}
	size := len(data) - len(rest)
	n := &node{start: base, end: base + size, major: data[0] >> 5, raw: data[:size]}
	count, head, definite := itemHead(data)
	n.head = head
	if !definite || depth >= walkMaxDepth {
		return n, rest, nil
	}
	body := data[head:size]
	off := base + head
	switch n.major {
	case 4:
		for range count {
			e, r, err := walkFirst(body, off, depth+1)
			if err != nil {
				return nil, nil, err
			}
			off += len(body) - len(r)
			body = r
			n.elems = append(n.elems, e)
		}
	case 5:
		for range count {
			k, r, err := walkFirst(body, off, depth+1)
			if err != nil {
				return nil, nil, err
			}
			off += len(body) - len(r)
			body = r
			v, r, err := walkFirst(body, off, depth+1)
			if err != nil {
				return nil, nil, err
			}
			off += len(body) - len(r)
			body = r
			n.pairs = append(n.pairs, pair{k, v})
		}
	}
	return n, rest, nil
}

// itemHead reads the head of a well-formed item: the argument (a count or length), the head's
// size, and whether the length is definite.
func itemHead(b []byte) (arg uint64, size int, definite bool) {
	ai := b[0] & 0x1f
	switch {
	case ai < 24:
		return uint64(ai), 1, true
	case ai == 31:
		return 0, 1, false
	case ai > 27:
		return 0, 1, false
	}
	size = 1 << (ai - 24) // 1, 2, 4 or 8 bytes follow
	for _, c := range b[1 : 1+size] {
		arg = arg<<8 | uint64(c)
	}
	return arg, 1 + size, true
}

// renderer writes a walked item in diagnostic notation with names and redactions.
type renderer struct {
	sb      strings.Builder
	msg     []byte // the whole message the offsets refer to
	secrets []Span // redacted spans (already merged)
	notes   map[int]string
}

// render writes n, looking names up in s.
func (r *renderer) render(n *node, s *schema) {
	switch {
	case n.major == 5 && n.pairs != nil || n.major == 5 && len(n.raw) == 1:
		r.sb.WriteByte('{')
		for i, p := range n.pairs {
			if i > 0 {
				r.sb.WriteString(", ")
			}
			r.leaf(p.key)
			var f *field
			if s != nil {
				f = s.lookup(p.key.keyOf())
			}
			if f != nil && f.name != "" {
				r.sb.WriteString(" /" + f.name + "/")
			}
			r.sb.WriteString(": ")
			var child *schema
			if f != nil {
				child = f.child
			}
			r.render(p.val, child)
			if f != nil && f.values != nil {
				if v, ok := p.val.intValue(); ok {
					if name, ok := f.values[v]; ok {
						r.sb.WriteString(" /" + name + "/")
					}
				}
			}
		}
		r.sb.WriteByte('}')
	case n.major == 4 && (n.elems != nil || len(n.raw) == 1):
		r.sb.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				r.sb.WriteString(", ")
			}
			var child *schema
			if s != nil {
				child = s.elem
			}
			r.render(e, child)
		}
		r.sb.WriteByte(']')
	default:
		r.leaf(n)
	}
	if note, ok := r.notes[n.start]; ok {
		r.sb.WriteString(" /" + note + "/")
	}
}

// leaf renders an item the walker did not descend into.
func (r *renderer) leaf(n *node) {
	red := r.overlap(Span{n.start, n.end})
	if len(red) == 0 {
		s, err := diagMode.Diagnose(n.raw)
		if err != nil {
			s = fmt.Sprintf("<%d bytes: %v>", len(n.raw), err)
		}
		r.sb.WriteString(s)
		return
	}
	c := n.content()
	if n.major == 2 && len(red) == 1 && red[0] == c {
		fmt.Fprintf(&r.sb, "<redacted %d bytes>", c.End-c.Start)
		return
	}
	if n.major == 2 && red[0].Start >= c.Start {
		// A byte string with secrets inside (authData with an hmac-secret output).
		b := newBytes(r.msg[c.Start:c.End], shift(red, -c.Start))
		r.sb.WriteString("h'" + b.String() + "'")
		return
	}
	fmt.Fprintf(&r.sb, "<redacted %d bytes>", n.end-n.start)
}

func (r *renderer) overlap(s Span) []Span {
	var out []Span
	for _, x := range r.secrets {
		if x.End > s.Start && x.Start < s.End {
			out = append(out, Span{max(x.Start, s.Start), min(x.End, s.End)})
		}
	}
	return out
}

func shift(spans []Span, d int) []Span {
	out := make([]Span, len(spans))
	for i, s := range spans {
		out[i] = Span{s.Start + d, s.End + d}
	}
	return out
}
