package ctap

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeStatuses(t *testing.T) {
	t.Parallel()
	valid := mustHex("a201" + "6b6578616d706c652e636f6d" + "02" + "5820" + "0000000000000000000000000000000000000000000000000000000000000000")
	_, err := DecodeGetAssertion(valid)
	require.NoError(t, err)

	for _, tc := range []struct {
		name string
		in   string
		want Status
	}{
		{"empty", "", ErrMissingParameter},
		{"not a map", "01", ErrCBORUnexpectedType},
		{"truncated", "a201", ErrInvalidCBOR},
		{"duplicate key", "a3016161016162025820" + "0000000000000000000000000000000000000000000000000000000000000000", ErrInvalidCBOR},
		{"rpId not text", "a201010258200000000000000000000000000000000000000000000000000000000000000000", ErrCBORUnexpectedType},
		{"indefinite map", "bf0161ff", ErrInvalidCBOR},
		{"tag", "c0a0", ErrInvalidCBOR},
		{"trailing bytes", "a000", ErrInvalidCBOR},
		{"too deep", "a104" + "a1616181818181818181818100", ErrInvalidCBOR},
		{"missing clientDataHash", "a2016161" + "05a0", ErrMissingParameter},
		{"missing rpId", "a1025820" + "0000000000000000000000000000000000000000000000000000000000000000", ErrMissingParameter},
		{"invalid utf-8", "a10162c328", ErrInvalidCBOR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeGetAssertion(mustHex(tc.in))
			require.Error(t, err)
			require.Equal(t, tc.want, StatusOf(err), "%v", err)
		})
	}
}

// FuzzDecodeRequests runs every request decoder on the same bytes: none may panic, and every
// failure carries one of the statuses a real key answers malformed input with.
func FuzzDecodeRequests(f *testing.F) {
	f.Add(mustHex("a201" + "6b6578616d706c652e636f6d" + "025820" + "0000000000000000000000000000000000000000000000000000000000000000"))
	f.Add(mustHex("a20101020a"))
	f.Add(mustHex("a301020203a0"))
	f.Add(mustHex("bf0161ff"))
	// Every request shape, valid and with an array or a null where each byte string belongs.
	for _, shape := range requestShapes {
		valid, err := Marshal(shape.valid())
		require.NoError(f, err)
		f.Add(valid)
		for _, path := range shape.byteStr {
			for _, v := range []any{[]any{1}, nil} {
				m := shape.valid()
				setPath(f, m, path, v)
				b, err := Marshal(m)
				require.NoError(f, err)
				f.Add(b)
			}
		}
	}
	allowed := map[Status]bool{ErrInvalidCBOR: true, ErrCBORUnexpectedType: true, ErrMissingParameter: true}
	check := func(t *testing.T, err error) {
		if err != nil {
			require.True(t, allowed[StatusOf(err)], "unexpected status for malformed input: %v", err)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := DecodeMakeCredential(b)
		check(t, err)
		_, err = DecodeGetAssertion(b)
		check(t, err)
		_, err = DecodeClientPIN(b)
		check(t, err)
		_, _, err = DecodeCredentialManagement(b)
		check(t, err)
		_, _, err = DecodeBioEnrollment(b)
		check(t, err)
		_, err = DecodeConfig(b)
		check(t, err)
		_, err = DecodeLargeBlobs(b)
		check(t, err)
		if a, err := ParseAuthData(b); err == nil {
			require.Equal(t, b, a.Marshal(), "authData re-encodes byte for byte")
		}
	})
}

func TestMarshalResponse(t *testing.T) {
	t.Parallel()
	b, err := MarshalResponse(&ClientPINResponse{PINRetries: Uint(8)})
	require.NoError(t, err)
	require.Equal(t, mustHex("00a10308"), b)
}
