package ctap

import (
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// The getAssertion request path is the key's hot path: every sign-in decodes one parameter map
// and encodes one response map. The generic reflection codec took two fifths of the
// authenticator's own time there (issue 13), so the common, well-formed shapes are handled here
// by hand.
//
// The fast decoder is a strict subset of the generic one: it accepts only what the generic decoder
// accepts (definite lengths, shortest heads, valid UTF-8, no tags or floats, known keys each once,
// top-level keys in ascending order) and then yields a struct equal to the generic one, nil and
// empty slices included. Anything else, well-formed or not, is handed to the generic decoder, so
// every error and every edge case keeps its status and message. FuzzDecodeGetAssertionFast and
// FuzzMarshalGetAssertionResponse hold both halves to that.

// CBOR major types.
const (
	majorUint  = 0
	majorBytes = 2
	majorText  = 3
	majorArray = 4
	majorMap   = 5
)

// cborHead reads the head of a data item at b[off]: its major type, its argument and the offset
// after the head. ok is false for an indefinite length, a reserved value, a head longer than it
// needs to be, or a truncated head; for byte and text strings, arrays and maps it is also false
// when the argument cannot fit in what is left of b (for arrays and maps, one byte per element).
func cborHead(b []byte, off int) (major byte, arg uint64, next int, ok bool) {
	// Most heads of a request are one byte: those skip the general case.
	if off < len(b) && b[off]&0x1f < 24 {
		major, arg = b[off]>>5, uint64(b[off]&0x1f)
		if major-majorBytes < 4 && arg > uint64(len(b)-off-1) {
			return 0, 0, 0, false
		}
		return major, arg, off + 1, true
	}
	return cborHeadLong(b, off)
}

// cborHeadLong is cborHead for heads with a following argument (or none at all).
func cborHeadLong(b []byte, off int) (major byte, arg uint64, next int, ok bool) {
	major, arg, next, size, ok := readHead(b, off)
	if !ok {
		return 0, 0, 0, false
	}
	// Shortest form only: a longer head is legal CBOR but left to the generic decoder.
	if size > 0 && arg < [...]uint64{1: 24, 2: 1 << 8, 4: 1 << 16, 8: 1 << 32}[size] {
		return 0, 0, 0, false
	}
	switch major {
	case majorBytes, majorText, majorArray, majorMap:
		if arg > uint64(len(b)-next) {
			return 0, 0, 0, false
		}
	}
	return major, arg, next, true
}

// span is a part of the request: b[start:end].
type span struct{ start, end int }

func (s span) len() int { return s.end - s.start }

// str reads a byte or text string (major) at b[off]: its content and the offset after it.
func str(b []byte, off int, major byte) (span, int, bool) {
	m, n, next, ok := cborHead(b, off)
	if !ok || m != major {
		return span{}, 0, false
	}
	s := span{next, next + int(n)}
	if major == majorText && !utf8.Valid(b[s.start:s.end]) {
		return span{}, 0, false
	}
	return s, s.end, true
}

// textKey reads a text string map key at b[off] and reports which of names it is (-1 for none).
func textKey(b []byte, off int, names ...string) (int, int, bool) {
	s, next, ok := str(b, off, majorText)
	if !ok {
		return 0, 0, false
	}
	for i, name := range names {
		if string(b[s.start:s.end]) == name {
			return i, next, true
		}
	}
	return -1, next, true
}

// descSpans is one allowList entry: which fields were sent and where their content lies.
type descSpans struct {
	id, typ, transports span
	has                 uint8 // 1: id, 2: type, 4: transports
}

// fastDescriptor reads one PublicKeyCredentialDescriptor map at b[off]: "id", "type" and
// "transports" (an array of text strings), in any order, each at most once.
func fastDescriptor(b []byte, off int) (descSpans, int, bool) {
	var d descSpans
	m, n, off, ok := cborHead(b, off)
	if !ok || m != majorMap || n > 3 {
		return d, 0, false
	}
	for range n {
		var k int
		if k, off, ok = textKey(b, off, "id", "type", "transports"); !ok || k < 0 || d.has&(1<<k) != 0 {
			return d, 0, false
		}
		d.has |= 1 << k
		switch k {
		case 0:
			d.id, off, ok = str(b, off, majorBytes)
		case 1:
			d.typ, off, ok = str(b, off, majorText)
		case 2:
			d.transports.start = off
			off, ok = textArray(b, off)
			d.transports.end = off
		}
		if !ok {
			return d, 0, false
		}
	}
	return d, off, true
}

// textArray reads an array of text strings at b[off] and returns the offset after it.
func textArray(b []byte, off int) (int, bool) {
	m, n, off, ok := cborHead(b, off)
	if !ok || m != majorArray || n > MaxArrayItems {
		return 0, false
	}
	for range n {
		if _, off, ok = str(b, off, majorText); !ok {
			return 0, false
		}
	}
	return off, true
}

// fastOptions reads the options map at b[off]: "rk", "up" and "uv" with boolean values, in any
// order, each at most once. vals[i] is the value of option i when has&(1<<i) is set.
func fastOptions(b []byte, off int) (has uint8, vals [3]bool, next int, ok bool) {
	m, n, off, ok := cborHead(b, off)
	if !ok || m != majorMap || n > 3 {
		return 0, vals, 0, false
	}
	for range n {
		var k int
		if k, off, ok = textKey(b, off, "rk", "up", "uv"); !ok || k < 0 || has&(1<<k) != 0 || off >= len(b) {
			return 0, vals, 0, false
		}
		switch b[off] {
		case 0xf4:
		case 0xf5:
			vals[k] = true
		default:
			return 0, vals, 0, false
		}
		has |= 1 << k
		off++
	}
	return has, vals, off, true
}

// gaSpans is what the first pass over a getAssertion request found.
type gaSpans struct {
	has                   uint8 // bit k: parameter k was sent
	rpID, cdh, pin, allow span  // allow: the whole allowList array, head included
	allowN                int
	optHas                uint8
	opts                  [3]bool
	protocol              uint64
	size                  int // bytes of every byte string and raw value the request holds
}

// gaFast is one allocation for a decoded request and the small values it points to, a one-entry
// allowList included. The byte strings get a buffer of their own, of their exact size: an inline
// buffer would save an allocation but add bytes, which costs more in garbage collection.
type gaFast struct {
	req      GetAssertionRequest
	opts     Options
	protocol uint64
	flags    [3]bool
	one      [1]CredentialDescriptor
}

// decodeGetAssertionFast decodes the common shapes of a getAssertion parameter map. ok is false
// when b is anything else; the caller then runs the generic decoder, which gives the answer.
func decodeGetAssertionFast(b []byte) (*GetAssertionRequest, bool) {
	sp, ok := scanGetAssertion(b)
	if !ok {
		return nil, false
	}
	g := new(gaFast)
	r := &g.req
	// One buffer holds every byte string: slices of it are capped so none can grow into another.
	arena := make([]byte, 0, sp.size)
	take := func(s span) []byte {
		start := len(arena)
		arena = append(arena, b[s.start:s.end]...)
		return arena[start:len(arena):len(arena)]
	}
	if sp.has&(1<<1) != 0 {
		r.RPID = string(b[sp.rpID.start:sp.rpID.end])
	}
	if sp.has&(1<<2) != 0 {
		r.ClientDataHash = take(sp.cdh)
	}
	if sp.has&(1<<3) != 0 {
		r.AllowList = g.one[:]
		if sp.allowN != 1 {
			r.AllowList = make([]CredentialDescriptor, sp.allowN) // non-nil when empty, as generic
		}
		_, _, off, _ := cborHead(b, sp.allow.start)
		for i := range r.AllowList {
			var d descSpans
			d, off, _ = fastDescriptor(b, off) // checked by the first pass
			c := &r.AllowList[i]
			if d.has&1 != 0 {
				c.ID = take(d.id)
			}
			if d.has&2 != 0 {
				c.Type = internType(b[d.typ.start:d.typ.end])
			}
			if d.has&4 != 0 {
				c.Transports = cbor.RawMessage(take(d.transports))
			}
		}
	}
	if sp.has&(1<<5) != 0 {
		r.Options = &g.opts
		for i, p := range []**bool{&g.opts.RK, &g.opts.UP, &g.opts.UV} {
			if sp.optHas&(1<<i) != 0 {
				g.flags[i] = sp.opts[i]
				*p = &g.flags[i]
			}
		}
	}
	if sp.has&(1<<6) != 0 {
		r.PinUvAuthParam = take(sp.pin) // non-nil when empty: a zero-length pinUvAuthParam is a probe
	}
	if sp.has&(1<<7) != 0 {
		g.protocol = sp.protocol
		r.PinUvAuthProtocol = &g.protocol
	}
	return r, true
}

// internType returns the credential type as a string, without an allocation for the one type
// CTAP defines.
func internType(t []byte) string {
	if string(t) == CredentialTypePublicKey {
		return CredentialTypePublicKey
	}
	return string(t)
}

// scanGetAssertion is the first pass: it checks that b is a shape the fast decoder handles and
// finds its parts.
func scanGetAssertion(b []byte) (gaSpans, bool) {
	var sp gaSpans
	m, n, off, ok := cborHead(b, 0)
	if !ok || m != majorMap || n > 7 {
		return sp, false
	}
	last := uint64(0)
	for range n {
		var k uint64
		if m, k, off, ok = cborHead(b, off); !ok || m != majorUint || k <= last || k > 7 {
			return sp, false
		}
		last = k
		sp.has |= 1 << k
		switch k {
		case 1:
			sp.rpID, off, ok = str(b, off, majorText)
		case 2:
			sp.cdh, off, ok = str(b, off, majorBytes)
			sp.size += sp.cdh.len()
		case 3:
			sp.allow.start = off
			off, ok = scanAllowList(b, off, &sp)
			sp.allow.end = off
		case 5:
			sp.optHas, sp.opts, off, ok = fastOptions(b, off)
		case 6:
			sp.pin, off, ok = str(b, off, majorBytes)
			sp.size += sp.pin.len()
		case 7:
			m, sp.protocol, off, ok = cborHead(b, off)
			ok = ok && m == majorUint
		default: // 4, extensions: left to the generic decoder
			return sp, false
		}
		if !ok {
			return sp, false
		}
	}
	return sp, off == len(b)
}

// scanAllowList checks the allowList array at b[off], counts its entries and adds the bytes they
// hold to sp.size.
func scanAllowList(b []byte, off int, sp *gaSpans) (int, bool) {
	m, n, off, ok := cborHead(b, off)
	if !ok || m != majorArray || n > MaxArrayItems {
		return 0, false
	}
	sp.allowN = int(n)
	for range n {
		var d descSpans
		if d, off, ok = fastDescriptor(b, off); !ok {
			return 0, false
		}
		sp.size += d.id.len() + d.transports.len()
	}
	return off, true
}
