package trace

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

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
	if v, ok := n.intValue(); ok {
		return v
	}
	if n.major == 3 && n.head > 0 && n.raw[0]&0x1f != 31 {
		return string(n.raw[n.head:])
	}
	return nil
}

// intValue returns an integer item's value.
func (n *node) intValue() (int64, bool) {
	if n.major > 1 {
		return 0, false
	}
	arg, _, definite := itemHead(n.raw)
	if !definite || arg > 1<<62 {
		return 0, false
	}
	if n.major == 1 {
		return -1 - int64(arg), true
	}
	return int64(arg), true
}

var errTrailing = errors.New("trailing bytes after the CBOR item")

// walk parses one CBOR item that fills data exactly; base is data's offset in the message. The
// codec checks the item (well-formed, within the limits) once; the walker then only measures
// the items inside it.
func walk(data []byte, base int) (*node, error) {
	var raw cbor.RawMessage
	rest, err := walkDec.UnmarshalFirst(data, &raw)
	if err != nil {
		return nil, err
	}
	n, _ := build(data[:len(data)-len(rest)], 0, base, 0)
	if len(rest) != 0 {
		return n, fmt.Errorf("%w (%d)", errTrailing, len(rest))
	}
	return n, nil
}

// build makes the node of the well-formed item at data[i:] and returns it with its end.
func build(data []byte, i, base, depth int) (*node, int) {
	end := skip(data, i, 0)
	n := &node{start: base + i, end: base + end, major: data[i] >> 5, raw: data[i:end]}
	count, head, definite := itemHead(data[i:end])
	n.head = head
	if !definite || depth >= walkMaxDepth {
		return n, end
	}
	j := i + head
	switch n.major {
	case 4:
		for k := uint64(0); k < count && j < end; k++ {
			var e *node
			e, j = build(data, j, base, depth+1)
			n.elems = append(n.elems, e)
		}
	case 5:
		for k := uint64(0); k < count && j < end; k++ {
			var key, val *node
			key, j = build(data, j, base, depth+1)
			if j >= end {
				break
			}
			val, j = build(data, j, base, depth+1)
			n.pairs = append(n.pairs, pair{key, val})
		}
	}
	return n, end
}

// skip returns the end of the well-formed item at data[i:] (RFC 8949 §3). It never reads past
// data: on anything else it returns len(data).
func skip(data []byte, i, depth int) int {
	if i >= len(data) || depth > walkMaxDepth {
		return len(data)
	}
	arg, head, definite := itemHead(data[i:])
	major := data[i] >> 5
	if i+head > len(data) {
		return len(data)
	}
	j := i + head
	if !definite && major >= 2 && major <= 5 {
		for j < len(data) && data[j] != 0xFF { // chunks or items until the break code
			j = skip(data, j, depth+1)
			if major == 5 {
				j = skip(data, j, depth+1)
			}
		}
		return min(j+1, len(data))
	}
	switch major {
	case 2, 3:
		if arg > uint64(len(data)-j) {
			return len(data)
		}
		return j + int(arg)
	case 4, 5:
		if major == 5 {
			arg *= 2
		}
		for k := uint64(0); k < arg && j < len(data); k++ {
			j = skip(data, j, depth+1)
		}
		return j
	case 6:
		return skip(data, j, depth+1)
	}
	return j // 0, 1, 7: the head is the whole item
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
	if len(b) < 1+size {
		return 0, len(b), false
	}
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
		if r.fastLeaf(n) {
			return
		}
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

// fastLeaf renders the common kinds of item directly; it returns false for the others (floats,
// tags, indefinite lengths), which the codec's Diagnose renders.
func (r *renderer) fastLeaf(n *node) bool {
	var buf [64]byte
	switch {
	case n.major <= 1:
		v, ok := n.intValue()
		if !ok {
			return false
		}
		r.sb.Write(strconv.AppendInt(buf[:0], v, 10))
	case n.major == 2 && n.raw[0]&0x1f != 31:
		r.sb.WriteString("h'")
		r.sb.WriteString(hex.EncodeToString(n.raw[n.head:]))
		r.sb.WriteByte('\'')
	case n.major == 3 && n.raw[0]&0x1f != 31 && utf8.Valid(n.raw[n.head:]):
		r.sb.Write(appendString(buf[:0], string(n.raw[n.head:])))
	case n.raw[0] == 0xf4:
		r.sb.WriteString("false")
	case n.raw[0] == 0xf5:
		r.sb.WriteString("true")
	case n.raw[0] == 0xf6:
		r.sb.WriteString("null")
	default:
		return false
	}
	return true
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
