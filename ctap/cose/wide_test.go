package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"sync"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// testRSA is one 2048-bit key for the package's tests (generation takes a while).
var testRSA = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// TestWideKeysRoundTrip: ES384, ES512, RS256 and PS256 public keys survive Marshal/Unmarshal
// with the labels RFC 9053 §7.1.1 (EC2: crv 2 = P-384, 3 = P-521) and RFC 8230 §4 (RSA: kty 3,
// n = -1, e = -2) give them, and verify signatures the standard library makes.
func TestWideKeysRoundTrip(t *testing.T) {
	t.Parallel()
	msg := []byte("authenticator data ‖ client data hash")
	type signed struct {
		name  string
		key   func(t *testing.T) Key
		sig   func(t *testing.T) []byte
		curve Curve
		kty   KeyType
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	ec := func(priv *ecdsa.PrivateKey, alg Algorithm) (func(*testing.T) Key, func(*testing.T) []byte) {
		return func(t *testing.T) Key {
				k, err := FromECDSA(alg, &priv.PublicKey)
				require.NoError(t, err)
				return k
			}, func(t *testing.T) []byte {
				s, err := ecdsa.SignASN1(rand.Reader, priv, Digest(alg, msg))
				require.NoError(t, err)
				return s
			}
	}
	rs := func(alg Algorithm) (func(*testing.T) Key, func(*testing.T) []byte) {
		return func(t *testing.T) Key {
				k, err := FromRSA(alg, &testRSA().PublicKey)
				require.NoError(t, err)
				return k
			}, func(t *testing.T) []byte {
				var s []byte
				var err error
				if alg == AlgRS256 {
					s, err = rsa.SignPKCS1v15(rand.Reader, testRSA(), crypto.SHA256, Digest(alg, msg))
				} else {
					s, err = rsa.SignPSS(rand.Reader, testRSA(), crypto.SHA256, Digest(alg, msg), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
				}
				require.NoError(t, err)
				return s
			}
	}
	var cases []signed
	k, s := ec(p384, AlgES384)
	cases = append(cases, signed{"ES384", k, s, CurveP384, KeyTypeEC2})
	k, s = ec(p521, AlgES512)
	cases = append(cases, signed{"ES512", k, s, CurveP521, KeyTypeEC2})
	k, s = rs(AlgRS256)
	cases = append(cases, signed{"RS256", k, s, 0, KeyTypeRSA})
	k, s = rs(AlgPS256)
	cases = append(cases, signed{"PS256", k, s, 0, KeyTypeRSA})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := tc.key(t)
			b, err := key.Marshal()
			require.NoError(t, err)
			var m map[int]cbor.RawMessage
			require.NoError(t, cbor.Unmarshal(b, &m))
			require.Equal(t, cbor.RawMessage(mustMarshal(t, int(tc.kty))), m[labelKty])
			if tc.kty == KeyTypeRSA {
				require.Len(t, m, 4, "kty, alg, n, e")
				require.Equal(t, cbor.RawMessage(mustMarshal(t, []byte{1, 0, 1})), m[labelE], "e = 65537")
			} else {
				require.Len(t, m, 5, "kty, alg, crv, x, y")
				require.Equal(t, cbor.RawMessage(mustMarshal(t, int(tc.curve))), m[labelCrv])
			}
			back, err := Unmarshal(b)
			require.NoError(t, err)
			require.Equal(t, key, back)
			sig := tc.sig(t)
			require.NoError(t, back.Verify(msg, sig))
			bad := append([]byte(nil), sig...)
			bad[len(bad)-1] ^= 1
			require.ErrorIs(t, back.Verify(msg, bad), ErrBadSignature)
			require.ErrorIs(t, back.Verify(append(msg, 0), sig), ErrBadSignature)
		})
	}
	// Signatures under the other RSA padding do not verify: RS256 and PS256 are not confused.
	pkcs, err := rsa.SignPKCS1v15(rand.Reader, testRSA(), crypto.SHA256, Digest(AlgRS256, msg))
	require.NoError(t, err)
	ps, err := FromRSA(AlgPS256, &testRSA().PublicKey)
	require.NoError(t, err)
	require.ErrorIs(t, ps.Verify(msg, pkcs), ErrBadSignature)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestWideKeyErrors(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	k384, err := FromECDSA(AlgES384, &p384.PublicKey)
	require.NoError(t, err)
	pt := append([]byte(nil), k384.Wide.Y...)
	pt[len(pt)-1] ^= 1
	n := testRSA().N.Bytes()
	enc := func(m map[int]any) []byte { return mustMarshal(t, m) }
	for _, tc := range []struct {
		name string
		in   []byte
		want ctap.Status
	}{
		{"P-384 with ES256", enc(map[int]any{1: 2, 3: -7, -1: 2, -2: k384.Wide.X, -3: k384.Wide.Y}), ctap.ErrUnsupportedAlgorithm},
		{"P-384 short x", enc(map[int]any{1: 2, 3: -35, -1: 2, -2: k384.Wide.X[1:], -3: k384.Wide.Y}), ctap.ErrInvalidParameter},
		{"P-384 off curve", enc(map[int]any{1: 2, 3: -35, -1: 2, -2: k384.Wide.X, -3: pt}), ctap.ErrInvalidParameter},
		{"P-384 x as array", enc(map[int]any{1: 2, 3: -35, -1: 2, -2: []int{1}, -3: k384.Wide.Y}), ctap.ErrCBORUnexpectedType},
		{"P-521 with ES384", enc(map[int]any{1: 2, 3: -35, -1: 3, -2: make([]byte, 66), -3: make([]byte, 66)}), ctap.ErrUnsupportedAlgorithm},
		{"curve 4", enc(map[int]any{1: 2, 3: -7, -1: 4, -2: make([]byte, 32), -3: make([]byte, 32)}), ctap.ErrUnsupportedAlgorithm},
		{"RSA missing e", enc(map[int]any{1: 3, 3: -257, -1: n}), ctap.ErrMissingParameter},
		{"RSA n as array", enc(map[int]any{1: 3, 3: -257, -1: []int{1, 2}, -2: []byte{1, 0, 1}}), ctap.ErrCBORUnexpectedType},
		{"RSA 1024-bit", enc(map[int]any{1: 3, 3: -257, -1: n[:128], -2: []byte{1, 0, 1}}), ctap.ErrInvalidParameter},
		{"RSA leading zero", enc(map[int]any{1: 3, 3: -257, -1: append([]byte{0}, n...), -2: []byte{1, 0, 1}}), ctap.ErrInvalidParameter},
		{"RSA even exponent", enc(map[int]any{1: 3, 3: -257, -1: n, -2: []byte{1, 0, 0}}), ctap.ErrInvalidParameter},
		{"RSA with ES256", enc(map[int]any{1: 3, 3: -7, -1: n, -2: []byte{1, 0, 1}}), ctap.ErrUnsupportedAlgorithm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Unmarshal(tc.in)
			requireStatus(t, err, tc.want)
		})
	}
	// The larger keys are not key-agreement keys.
	_, err = k384.ECDH()
	requireStatus(t, err, ctap.ErrUnsupportedAlgorithm)
}
