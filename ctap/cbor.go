package ctap

import (
	"bytes"
	"errors"

	"github.com/fxamacker/cbor/v2"
)

// Limits on CBOR input. CTAP 2.1 §8 lets platforms use at most four levels of nesting; the key
// accepts a little more so that harmless extension payloads still decode, and refuses anything
// deeper with CTAP2_ERR_INVALID_CBOR, as hardware keys with fixed parse stacks do.
const (
	MaxNesting     = 8
	MaxArrayItems  = 256
	MaxMapPairs    = 64
	MaxMessageSize = 7609
)

var (
	encMode cbor.EncMode
	bufMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	encMode, err = cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err) // static options: a failure here is a programming error
	}
	if bufMode, err = cbor.CTAP2EncOptions().UserBufferEncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   MaxNesting,
		MaxArrayElements:  MaxArrayItems,
		MaxMapPairs:       MaxMapPairs,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		IntDec:            cbor.IntDecConvertSignedOrFail,
		UTF8:              cbor.UTF8RejectInvalid,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorNone,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Marshal encodes v in CTAP2 canonical CBOR.
func Marshal(v any) ([]byte, error) { return encMode.Marshal(v) }

// MarshalResponse encodes a successful CTAP2 response: the CTAP2_OK status byte followed by v in
// CTAP2 canonical CBOR, in one buffer. A getAssertion response takes a hand-written encoder that
// writes the same bytes.
func MarshalResponse(v any) ([]byte, error) {
	if r, ok := v.(*GetAssertionResponse); ok {
		if out, ok := marshalGetAssertionResponse(r); ok {
			return out, nil
		}
	}
	return marshalResponseGeneric(v)
}

// marshalResponseGeneric is MarshalResponse with the generic encoder only.
func marshalResponseGeneric(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(256)
	buf.WriteByte(byte(StatusOK))
	if err := bufMode.MarshalToBuffer(v, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncMode returns the CTAP2 canonical encoder, for packages that embed CBOR in their own types.
func EncMode() cbor.EncMode { return encMode }

// DecMode returns the strict decoder used for every request.
func DecMode() cbor.DecMode { return decMode }

// Unmarshal decodes strictly and maps every failure to the CTAP status a real key returns.
// The returned error wraps a Status; use StatusOf to read it.
func Unmarshal(data []byte, v any) error {
	if len(data) == 0 {
		return &DecodeError{Status: ErrMissingParameter, Err: errors.New("empty CBOR parameters")}
	}
	if len(data) == 1 && (data[0] == 0xf6 || data[0] == 0xf7) {
		// The library decodes null into a zero struct without complaint; a parameter map (or a
		// subCommandParams map) that is null is a value of the wrong type.
		return &DecodeError{Status: ErrCBORUnexpectedType, Err: errors.New("null where a map belongs")}
	}
	if err := decMode.Unmarshal(data, v); err != nil {
		return &DecodeError{Status: statusForCBOR(err), Err: err}
	}
	return nil
}

// RawMap is a CBOR value kept undecoded, e.g. a subCommandParams map whose exact bytes are authenticated.
type RawMap = cbor.RawMessage
