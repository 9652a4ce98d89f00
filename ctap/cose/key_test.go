package cose

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// fixedScalar is an arbitrary valid P-256 private scalar used to pin vectors.
var fixedScalar = mustHex("c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func fixedKey(t testing.TB, alg Algorithm) Key {
	t.Helper()
	priv, err := ecdh.P256().NewPrivateKey(fixedScalar)
	require.NoError(t, err)
	k, err := FromUncompressed(alg, priv.PublicKey().Bytes())
	require.NoError(t, err)
	return k
}

func requireStatus(t *testing.T, err error, want ctap.Status) {
	t.Helper()
	require.Error(t, err)
	var got ctap.Status
	require.True(t, errors.As(err, &got), "error %v carries no ctap.Status", err)
	require.Equal(t, want, got, "error: %v", err)
}

func TestMarshalCanonicalLayout(t *testing.T) {
	t.Parallel()
	k := fixedKey(t, AlgECDHESHKDF256)
	b, err := k.Marshal()
	require.NoError(t, err)
	// CTAP2 canonical order: 1, 3, -1, -2, -3 (shorter encodings first, then bytewise).
	want := append([]byte{0xa5, 0x01, 0x02, 0x03, 0x38, 0x18, 0x20, 0x01, 0x21, 0x58, 0x20}, k.X[:]...)
	want = append(append(want, 0x22, 0x58, 0x20), k.Y[:]...)
	require.Equal(t, want, b)
	require.Len(t, b, 78) // -25 needs a two-byte integer head, -7 one

	es := fixedKey(t, AlgES256)
	b, err = es.Marshal()
	require.NoError(t, err)
	require.Equal(t, []byte{0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20}, b[:10])

	ed := Key{Type: KeyTypeOKP, Alg: AlgEdDSA, Curve: CurveEd25519, X: [32]byte{1, 2, 3}}
	b, err = ed.Marshal()
	require.NoError(t, err)
	require.Equal(t, []byte{0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 0x20, 1, 2, 3}, b[:13])
	require.Len(t, b, 42)
}

func TestRoundTripKeepsLeadingZeros(t *testing.T) {
	t.Parallel()
	// Search for keys whose x and y begin with a zero byte: the case a big-integer
	// encoding breaks. About 1 in 256 keys has each.
	var seenX, seenY bool
	for i := 0; i < 20000 && !(seenX && seenY); i++ {
		priv, err := ecdh.P256().GenerateKey(rand.Reader)
		require.NoError(t, err)
		pub := priv.PublicKey().Bytes()
		if pub[1] != 0 && pub[33] != 0 {
			continue
		}
		seenX = seenX || pub[1] == 0
		seenY = seenY || pub[33] == 0
		k, err := FromECDH(priv.PublicKey())
		require.NoError(t, err)
		b, err := k.Marshal()
		require.NoError(t, err)
		require.Len(t, b, 78)
		back, err := Unmarshal(b)
		require.NoError(t, err)
		require.Equal(t, k, back)
		got, err := back.ECDH()
		require.NoError(t, err)
		require.True(t, got.Equal(priv.PublicKey()))
	}
	require.True(t, seenX && seenY, "no key with a leading zero coordinate found")
}

func TestConversions(t *testing.T) {
	t.Parallel()
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := FromECDSA(AlgES256, &ecPriv.PublicKey)
	require.NoError(t, err)
	back, err := k.ECDSA()
	require.NoError(t, err)
	require.True(t, back.Equal(&ecPriv.PublicKey))
	msg := []byte("client data")
	digest := sha256.Sum256(msg)
	sig, err := ecdsa.SignASN1(rand.Reader, ecPriv, digest[:])
	require.NoError(t, err)
	require.NoError(t, k.Verify(msg, sig))
	require.ErrorIs(t, k.Verify([]byte("other"), sig), ErrBadSignature)

	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	ek, err := FromEd25519(edPub)
	require.NoError(t, err)
	b, err := ek.Marshal()
	require.NoError(t, err)
	ek2, err := Unmarshal(b)
	require.NoError(t, err)
	gotPub, err := ek2.Ed25519()
	require.NoError(t, err)
	require.True(t, gotPub.Equal(edPub))
	require.NoError(t, ek2.Verify(msg, ed25519.Sign(edPriv, msg)))
	require.ErrorIs(t, ek2.Verify(msg, make([]byte, 64)), ErrBadSignature)

	_, err = ek.ECDSA()
	requireStatus(t, err, ctap.ErrUnsupportedAlgorithm)
	_, err = k.Ed25519()
	requireStatus(t, err, ctap.ErrUnsupportedAlgorithm)
	_, err = FromEd25519(edPub[:31])
	requireStatus(t, err, ctap.ErrInvalidParameter)
	_, err = FromUncompressed(AlgES256, make([]byte, 65))
	requireStatus(t, err, ctap.ErrInvalidParameter)
	_, err = FromECDH(nil)
	requireStatus(t, err, ctap.ErrUnsupportedAlgorithm)
}

// encode builds a test input from a label map with the CTAP2 encoder.
func encode(t *testing.T, m map[int]any) []byte {
	t.Helper()
	b, err := encMode.Marshal(m)
	require.NoError(t, err)
	return b
}

func validMap(k Key) map[int]any {
	return map[int]any{1: int64(k.Type), 3: int64(k.Alg), -1: int64(k.Curve), -2: k.X[:], -3: k.Y[:]}
}

// bytesAsArray is b as a CBOR array of integers instead of a byte string.
func bytesAsArray(b []byte) []int {
	a := make([]int, len(b))
	for i, x := range b {
		a[i] = int(x)
	}
	return a
}

func TestUnmarshalErrors(t *testing.T) {
	t.Parallel()
	k := fixedKey(t, AlgECDHESHKDF256)
	with := func(label int, v any) []byte {
		m := validMap(k)
		if v == nil {
			delete(m, label)
		} else {
			m[label] = v
		}
		return encode(t, m)
	}
	offCurve := k.Y
	offCurve[31] ^= 1
	good := encode(t, validMap(k))
	tests := []struct {
		name string
		in   []byte
		want ctap.Status
	}{
		{"empty", nil, ctap.ErrInvalidCBOR},
		{"truncated", good[:len(good)-1], ctap.ErrInvalidCBOR},
		{"trailing byte", append(append([]byte{}, good...), 0x00), ctap.ErrInvalidCBOR},
		{"reserved additional info", []byte{0x1c}, ctap.ErrInvalidCBOR},
		{"duplicate label", append([]byte{0xa6, 0x01, 0x02}, good[1:]...), ctap.ErrInvalidCBOR},
		{"indefinite map", append(append([]byte{0xbf}, good[1:]...), 0xff), ctap.ErrInvalidCBOR},
		{"tagged", append([]byte{0xd8, 0x18}, good...), ctap.ErrInvalidCBOR},
		{"not a map", []byte{0x82, 0x01, 0x02}, ctap.ErrCBORUnexpectedType},
		{"null", []byte{0xf6}, ctap.ErrCBORUnexpectedType},
		{"text label", []byte{0xa2, 0x01, 0x02, 0x61, 'x', 0x00}, ctap.ErrCBORUnexpectedType},
		{"missing kty", with(1, nil), ctap.ErrMissingParameter},
		{"missing alg", with(3, nil), ctap.ErrMissingParameter},
		{"missing crv", with(-1, nil), ctap.ErrMissingParameter},
		{"missing x", with(-2, nil), ctap.ErrMissingParameter},
		{"missing y", with(-3, nil), ctap.ErrMissingParameter},
		{"kty as text", with(1, "EC2"), ctap.ErrCBORUnexpectedType},
		{"alg null", with(3, cbor.RawMessage{0xf6}), ctap.ErrCBORUnexpectedType},
		{"crv as float", with(-1, 1.0), ctap.ErrCBORUnexpectedType},
		{"x as text", with(-2, "0123456789abcdef0123456789abcdef"), ctap.ErrCBORUnexpectedType},
		{"text with invalid UTF-8", with(-2, string(k.X[:])), ctap.ErrInvalidCBOR},
		{"y as bool", with(-3, true), ctap.ErrCBORUnexpectedType},
		// An array of 32 small integers decodes into a []byte with a lax decoder (issue 9 item 13).
		{"x as array of bytes", with(-2, bytesAsArray(k.X[:])), ctap.ErrCBORUnexpectedType},
		{"y as array of bytes", with(-3, bytesAsArray(k.Y[:])), ctap.ErrCBORUnexpectedType},
		{"x as map", with(-2, map[int]int{1: 2}), ctap.ErrCBORUnexpectedType},
		{"y null", with(-3, cbor.RawMessage{0xf6}), ctap.ErrCBORUnexpectedType},
		{"x short", with(-2, k.X[1:]), ctap.ErrInvalidParameter},
		{"x long", with(-2, append([]byte{0}, k.X[:]...)), ctap.ErrInvalidParameter},
		{"y empty", with(-3, []byte{}), ctap.ErrInvalidParameter},
		{"point off curve", with(-3, offCurve[:]), ctap.ErrInvalidParameter},
		{"zero point", with(-2, make([]byte, 32)), ctap.ErrInvalidParameter},
		{"kty RSA with EC2 labels", with(1, 3), ctap.ErrCBORUnexpectedType}, // -1 is RSA's n, a byte string
		{"kty 4", with(1, 4), ctap.ErrUnsupportedAlgorithm},
		{"crv P-384", with(-1, 2), ctap.ErrUnsupportedAlgorithm},
		{"alg RS256", with(3, int64(AlgRS256)), ctap.ErrUnsupportedAlgorithm},
		{"alg EdDSA on EC2", with(3, int64(AlgEdDSA)), ctap.ErrUnsupportedAlgorithm},
		{"OKP with y", encode(t, map[int]any{1: 1, 3: -8, -1: 6, -2: k.X[:], -3: k.Y[:]}), ctap.ErrInvalidParameter},
		{"OKP wrong curve", encode(t, map[int]any{1: 1, 3: -8, -1: 4, -2: k.X[:]}), ctap.ErrUnsupportedAlgorithm},
		{"OKP with ES256", encode(t, map[int]any{1: 1, 3: -7, -1: 6, -2: k.X[:]}), ctap.ErrUnsupportedAlgorithm},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Unmarshal(tc.in)
			requireStatus(t, err, tc.want)
			var ce *Error
			require.ErrorAs(t, err, &ce)
		})
	}
}

func TestUnmarshalIgnoresUnknownLabels(t *testing.T) {
	t.Parallel()
	k := fixedKey(t, AlgES256)
	m := validMap(k)
	m[2] = []byte("kid")
	m[-4] = "ignored"
	got, err := Unmarshal(encode(t, m))
	require.NoError(t, err)
	require.Equal(t, k, got)
}

type envelope struct {
	Key      Key  `cbor:"1,keyasint"`
	Optional *Key `cbor:"2,keyasint,omitempty"`
}

func TestKeyInsideStruct(t *testing.T) {
	t.Parallel()
	k := fixedKey(t, AlgECDHESHKDF256)
	b, err := encMode.Marshal(envelope{Key: k})
	require.NoError(t, err)
	inner, err := k.Marshal()
	require.NoError(t, err)
	require.Equal(t, append([]byte{0xa1, 0x01}, inner...), b)

	var e envelope
	require.NoError(t, cbor.Unmarshal(b, &e))
	require.Equal(t, k, e.Key)
	require.Nil(t, e.Optional)

	bad := bytes.Clone(b)
	bad[len(bad)-1] ^= 1 // moves y off the curve
	err = cbor.Unmarshal(bad, &e)
	requireStatus(t, err, ctap.ErrInvalidParameter)

	_, err = encMode.Marshal(envelope{Key: Key{Type: KeyTypeEC2, Alg: AlgES256, Curve: CurveP256}})
	require.Error(t, err, "marshalling an invalid key must fail")
}

func FuzzUnmarshal(f *testing.F) {
	k := fixedKey(f, AlgECDHESHKDF256)
	good, err := k.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	ed, err := Key{Type: KeyTypeOKP, Alg: AlgEdDSA, Curve: CurveEd25519, X: [32]byte{9}}.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ed)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x01, 0x02})
	f.Add(good[:40])
	// The wider keys: P-384, P-521 and RSA (a fixed modulus of 2048 bits: the top and low bits set).
	for _, c := range []elliptic.Curve{elliptic.P384(), elliptic.P521()} {
		priv, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		alg := map[elliptic.Curve]Algorithm{elliptic.P384(): AlgES384, elliptic.P521(): AlgES512}[c]
		wk, err := FromECDSA(alg, &priv.PublicKey)
		if err != nil {
			f.Fatal(err)
		}
		b, err := wk.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	n := bytes.Repeat([]byte{0xc5}, 256)
	rsaKey, err := Key{Type: KeyTypeRSA, Alg: AlgRS256, Wide: &Wide{N: n, E: []byte{1, 0, 1}}}.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(rsaKey)
	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := Unmarshal(data)
		if err != nil {
			var s ctap.Status
			if !errors.As(err, &s) || s == ctap.StatusOK {
				t.Fatalf("error without a CTAP status: %v", err)
			}
			return
		}
		// Whatever is accepted is valid and survives a canonical round trip.
		if err := key.Validate(); err != nil {
			t.Fatalf("accepted key fails validation: %v", err)
		}
		out, err := key.Marshal()
		if err != nil {
			t.Fatalf("accepted key does not marshal: %v", err)
		}
		again, err := Unmarshal(out)
		if err != nil || !reflect.DeepEqual(again, key) {
			t.Fatalf("round trip changed the key: %v", err)
		}
		if key.Wide != nil {
			return // P-384, P-521, RSA: the round trip is the check
		}
		// The canonical form has a fixed size per key type.
		want := map[Algorithm]int{AlgES256: 77, AlgECDHESHKDF256: 78, AlgEdDSA: 42}[key.Alg]
		if len(out) != want {
			t.Fatalf("canonical encoding is %d bytes, want %d", len(out), want)
		}
	})
}
