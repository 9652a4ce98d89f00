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
	var raw []byte
	if err := decMode.Unmarshal(data, &raw); err != nil {
		return &DecodeError{Status: statusForCBOR(err), Err: err}
	}
	*b = raw
	return nil
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
