package ctap

import "fmt"

// Bytes is a CBOR byte string (major type 2) in a request: clientDataHash, pinUvAuthParam,
// credential and user IDs, encrypted PINs and salts. It exists because a plain []byte field would
// also accept an array of small integers ([1, 2, 3] decodes into []byte{1, 2, 3}) and treat null
// as absent; a hardware key parses these fields as byte strings and answers anything else with
// CTAP2_ERR_CBOR_UNEXPECTED_TYPE (CTAP 2.1 §8: each parameter has one CBOR type). Bytes converts
// to and from []byte without a cast and encodes as a byte string like []byte.
type Bytes []byte

// UnmarshalCBOR implements cbor.Unmarshaler: a byte string, nothing else.
func (b *Bytes) UnmarshalCBOR(data []byte) error {
	if len(data) == 0 {
		return &DecodeError{Status: ErrInvalidCBOR, Err: fmt.Errorf("empty data item where a byte string belongs")}
	}
	if major := data[0] >> 5; major != 2 {
		// Malformed content (invalid UTF-8 in a text string, a NaN) is still INVALID_CBOR, as
		// it would be in a field of the right type: only a well-formed item is of a wrong type.
		var v any
		if err := decMode.Unmarshal(data, &v); err != nil {
			return &DecodeError{Status: statusForCBOR(err), Err: err}
		}
		return &DecodeError{Status: ErrCBORUnexpectedType, Err: fmt.Errorf("%s where a byte string belongs", majorTypeName(data[0]))}
	}
	// The library hands over one whole, well-formed data item; its head is read here rather than
	// by a second Unmarshal, which would cost the request path an allocation per field.
	n, off, ok := byteStringHead(data)
	if !ok || uint64(len(data)-off) != n {
		return &DecodeError{Status: ErrInvalidCBOR, Err: fmt.Errorf("malformed byte string")}
	}
	out := make([]byte, len(data)-off) // non-nil when empty: a zero-length pinUvAuthParam is a probe
	copy(out, data[off:])
	*b = out
	return nil
}

// byteStringHead decodes the head of a definite-length byte string: its length and where its
// content starts. ok is false for an indefinite length (forbidden in CTAP) or a reserved value.
func byteStringHead(data []byte) (n uint64, off int, ok bool) {
	_, n, off, _, ok = readHead(data, 0)
	return n, off, ok
}

// readHead decodes the head of the data item at b[off]: its major type, its argument, the offset
// after the head and how many bytes the argument took there (0 when it is in the initial byte).
// ok is false past the end of b, for an indefinite length or a reserved value, and for a head
// cut short. Whether the head is the shortest form is the caller's question.
func readHead(b []byte, off int) (major byte, arg uint64, next, size int, ok bool) {
	if off >= len(b) {
		return 0, 0, 0, 0, false
	}
	major, ai := b[off]>>5, b[off]&0x1f
	next = off + 1
	switch {
	case ai < 24:
		return major, uint64(ai), next, 0, true
	case ai == 24:
		size = 1
	case ai == 25:
		size = 2
	case ai == 26:
		size = 4
	case ai == 27:
		size = 8
	default:
		return 0, 0, 0, 0, false
	}
	if len(b)-next < size {
		return 0, 0, 0, 0, false
	}
	for _, c := range b[next : next+size] {
		arg = arg<<8 | uint64(c)
	}
	return major, arg, next + size, size, true
}

// majorTypeName names the CBOR data item that starts with initial byte ib, for error messages.
func majorTypeName(ib byte) string {
	switch ib >> 5 {
	case 0:
		return "an unsigned integer"
	case 1:
		return "a negative integer"
	case 2:
		return "a byte string"
	case 3:
		return "a text string"
	case 4:
		return "an array"
	case 5:
		return "a map"
	case 6:
		return "a tag"
	}
	switch ib {
	case 0xf4, 0xf5:
		return "a boolean"
	case 0xf6:
		return "null"
	case 0xf7:
		return "undefined"
	}
	return "a simple value or float"
}
