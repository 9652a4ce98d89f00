package ctap

import (
	"fmt"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// requestShape is one request type of the audit: a valid parameter map, its decoder, and the
// path of every parameter that must be a CBOR byte string.
type requestShape struct {
	name    string
	decode  func([]byte) error
	valid   func() map[any]any
	byteStr [][]any // paths: map keys and array indexes
}

func bstr(n int) []byte { return make([]byte, n) }

func cred() map[any]any { return map[any]any{"id": bstr(16), "type": "public-key"} }

func hmacInput() map[any]any {
	return map[any]any{1: map[any]any{1: 2, 3: -25, -1: 1, -2: bstr(32), -3: bstr(32)}, 2: bstr(32), 3: bstr(16), 4: 2}
}

// requestShapes is the audit of every CTAP2 request type the key decodes (CTAP 2.1 §6): every
// byte-string parameter, at every depth, is listed here.
var requestShapes = []requestShape{
	{
		name:   "authenticatorMakeCredential",
		decode: func(b []byte) error { _, err := DecodeMakeCredential(b); return err },
		valid: func() map[any]any {
			return map[any]any{
				1: bstr(32),
				2: map[any]any{"id": "example.com"},
				3: map[any]any{"id": bstr(8), "name": "alice"},
				4: []any{map[any]any{"alg": -7, "type": "public-key"}},
				5: []any{cred()},
				6: map[any]any{"credBlob": bstr(4), "hmac-secret-mc": hmacInput()},
				8: bstr(16),
				9: 2,
			}
		},
		byteStr: [][]any{{1}, {3, "id"}, {5, 0, "id"}, {6, "credBlob"}, {6, "hmac-secret-mc", 2}, {6, "hmac-secret-mc", 3}, {8}},
	},
	{
		name:   "authenticatorGetAssertion",
		decode: func(b []byte) error { _, err := DecodeGetAssertion(b); return err },
		valid: func() map[any]any {
			return map[any]any{
				1: "example.com",
				2: bstr(32),
				3: []any{cred()},
				4: map[any]any{"hmac-secret": hmacInput()},
				6: bstr(16),
				7: 2,
			}
		},
		byteStr: [][]any{{2}, {3, 0, "id"}, {4, "hmac-secret", 2}, {4, "hmac-secret", 3}, {6}},
	},
	{
		name:   "authenticatorClientPIN",
		decode: func(b []byte) error { _, err := DecodeClientPIN(b); return err },
		valid: func() map[any]any {
			return map[any]any{1: 2, 2: 4, 4: bstr(32), 5: bstr(80), 6: bstr(32), 9: 1, 10: "example.com"}
		},
		byteStr: [][]any{{4}, {5}, {6}},
	},
	{
		name: "authenticatorCredentialManagement",
		decode: func(b []byte) error {
			_, _, err := DecodeCredentialManagement(b)
			return err
		},
		valid: func() map[any]any {
			return map[any]any{1: 7, 2: map[any]any{1: bstr(32), 2: cred(), 3: map[any]any{"id": bstr(8)}}, 3: 2, 4: bstr(32)}
		},
		byteStr: [][]any{{2, 1}, {2, 2, "id"}, {2, 3, "id"}, {4}},
	},
	{
		name: "authenticatorBioEnrollment",
		decode: func(b []byte) error {
			_, _, err := DecodeBioEnrollment(b)
			return err
		},
		valid: func() map[any]any {
			return map[any]any{1: 1, 2: 5, 3: map[any]any{1: bstr(4), 2: "thumb"}, 4: 2, 5: bstr(32)}
		},
		byteStr: [][]any{{3, 1}, {5}},
	},
	{
		name:    "authenticatorConfig",
		decode:  func(b []byte) error { _, err := DecodeConfig(b); return err },
		valid:   func() map[any]any { return map[any]any{1: 3, 2: map[any]any{1: 6}, 3: 2, 4: bstr(32)} },
		byteStr: [][]any{{4}},
	},
	{
		name:    "authenticatorLargeBlobs",
		decode:  func(b []byte) error { _, err := DecodeLargeBlobs(b); return err },
		valid:   func() map[any]any { return map[any]any{2: bstr(17), 3: 0, 4: 17, 5: bstr(32), 6: 2} },
		byteStr: [][]any{{2}, {5}},
	},
}

// setPath replaces the value at path inside m.
func setPath(t testing.TB, m map[any]any, path []any, v any) {
	t.Helper()
	var cur any = m
	for i, step := range path {
		last := i == len(path)-1
		switch c := cur.(type) {
		case map[any]any:
			if last {
				c[step] = v
				return
			}
			cur = c[step]
		case []any:
			if last {
				c[step.(int)] = v
				return
			}
			cur = c[step.(int)]
		default:
			t.Fatalf("path %v: step %d is not a container", path, i)
		}
	}
}

// TestByteStringParameters is issue 9 item 13: every parameter that CTAP defines as a byte
// string must be one. An array of small integers, null, a text string, an integer or a map in its
// place is CTAP2_ERR_CBOR_UNEXPECTED_TYPE, never accepted (a lax decoder turns [1] into the
// one-byte string 0x01) and never taken for an absent parameter.
func TestByteStringParameters(t *testing.T) {
	t.Parallel()
	wrong := map[string]any{
		"array":         []any{1},
		"array of 32":   make([]any, 32),
		"empty array":   []any{},
		"null":          cbor.RawMessage{0xf6},
		"undefined":     cbor.RawMessage{0xf7},
		"text":          "AAAA",
		"integer":       1,
		"negative":      -1,
		"map":           map[any]any{1: 1},
		"bool":          true,
		"float":         1.5,
		"nested arrays": []any{[]any{1}},
	}
	for i := range wrong["array of 32"].([]any) {
		wrong["array of 32"].([]any)[i] = 7
	}
	for _, shape := range requestShapes {
		valid, err := Marshal(shape.valid())
		require.NoError(t, err)
		require.NoError(t, shape.decode(valid), "%s: the valid request decodes", shape.name)
		for _, path := range shape.byteStr {
			for what, v := range wrong {
				t.Run(fmt.Sprintf("%s/%v/%s", shape.name, path, what), func(t *testing.T) {
					m := shape.valid()
					setPath(t, m, path, v)
					b, err := Marshal(m)
					require.NoError(t, err)
					require.Equal(t, ErrCBORUnexpectedType, StatusOf(shape.decode(b)), "%x", b)
				})
			}
		}
	}
}

// TestNullParameterMap: a null in place of the parameter map or of subCommandParams is a value of
// the wrong type, not an empty map.
func TestNullParameterMap(t *testing.T) {
	t.Parallel()
	for _, shape := range requestShapes {
		require.Equal(t, ErrCBORUnexpectedType, StatusOf(shape.decode([]byte{0xf6})), shape.name)
		require.Equal(t, ErrCBORUnexpectedType, StatusOf(shape.decode([]byte{0xf7})), shape.name)
	}
	for _, b := range [][]byte{mustHex("a2010402f6"), mustHex("a2010702f6")} {
		_, _, err := DecodeCredentialManagement(b)
		require.Equal(t, ErrCBORUnexpectedType, StatusOf(err), "%x", b)
	}
	_, _, err := DecodeBioEnrollment(mustHex("a30101020103f6"))
	require.Equal(t, ErrCBORUnexpectedType, StatusOf(err))
}

// TestBytesStillDecodeAndEncode: the stricter type changes nothing for a byte string, whatever
// the size of its head (1, 2, 3 and 5 bytes).
func TestBytesStillDecodeAndEncode(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 23, 24, 255, 256, 1023, 65535, 65536} {
		in := make([]byte, n)
		for i := range in {
			in[i] = byte(i)
		}
		b, err := Marshal(map[int]any{1: in})
		require.NoError(t, err)
		var out struct {
			B Bytes `cbor:"1,keyasint"`
		}
		require.NoError(t, Unmarshal(b, &out))
		require.Equal(t, in, []byte(out.B))
		require.NotNil(t, out.B, "an empty byte string is present, not absent (the zero-length pinUvAuthParam probe)")
		again, err := Marshal(map[int]any{1: out.B})
		require.NoError(t, err)
		require.Equal(t, b, again, "Bytes encodes as a byte string")
	}
}

// TestBytesMalformedHead: Bytes.UnmarshalCBOR refuses heads the library would never hand it
// (it validates first), so a change in the library cannot turn one into a wrong length.
func TestBytesMalformedHead(t *testing.T) {
	t.Parallel()
	for _, in := range [][]byte{{0x5f, 0x41, 0x00, 0xff}, {0x5c}, {0x59, 0x00}, {0x42, 0x00}, {0x41, 0x00, 0x00}, {}} {
		var b Bytes
		require.Equal(t, ErrInvalidCBOR, StatusOf(b.UnmarshalCBOR(in)), "%x", in)
		require.Nil(t, b)
	}
	var b Bytes
	require.NoError(t, b.UnmarshalCBOR([]byte{0x5a, 0, 0, 0, 2, 7, 8}))
	require.Equal(t, []byte{7, 8}, []byte(b))
}
