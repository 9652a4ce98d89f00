package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSignScalarKnownAnswer pins SignScalar to RFC 6979 A.2.5 (the same vector as
// TestKnownAnswer), so it signs exactly as Sign does with NewPrivateKey.
func TestSignScalarKnownAnswer(t *testing.T) {
	t.Parallel()
	k := mustHex(t, "A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60")
	s := New(WithPoolSize(0), WithRand(bytes.NewReader(k)))
	defer s.Close()
	digest := sha256.Sum256([]byte("sample"))
	der, err := s.SignScalar(mustHex(t, "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"), digest[:])
	require.NoError(t, err)
	r := mustHex(t, "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716")
	sig := mustHex(t, "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8")
	require.Equal(t, encodeDER((*[32]byte)(r), (*[32]byte)(sig)), der)
}

// TestSignScalarValidation: the scalars NewPrivateKey refuses are refused, the others sign
// verifiably, and the caller's scalar is left as it was.
func TestSignScalarValidation(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(8))
	defer s.Close()
	digest := sha256.Sum256([]byte("validation"))
	for _, tc := range scalarCases() {
		before := bytes.Clone(tc.scalar)
		der, err := s.SignScalar(tc.scalar, digest[:])
		require.Equal(t, before, tc.scalar, "%s: the caller's scalar must be left alone", tc.name)
		if !tc.ok {
			require.ErrorIs(t, err, ErrInvalidKey, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		key, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), tc.scalar)
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(&key.PublicKey, digest[:], der), tc.name)
	}
}

// TestSignScalarAllocatesOnlyTheSignature: the request path's signature allocates its DER
// encoding and nothing else (NewPrivateKey + Sign allocated four times).
func TestSignScalarAllocatesOnlyTheSignature(t *testing.T) {
	s := New(WithPoolSize(4096))
	defer s.Close()
	require.NoError(t, s.Fill())
	scalar := scalarBytes(big.NewInt(12345))
	digest := sha256.Sum256([]byte("allocs"))
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := s.SignScalar(scalar, digest[:]); err != nil {
			t.Fatal(err)
		}
	})
	require.LessOrEqual(t, allocs, 1.0)
}

// FuzzSignScalar: for any scalar and digest, SignScalar accepts exactly what NewPrivateKey
// accepts and its signature verifies under that key.
func FuzzSignScalar(f *testing.F) {
	f.Add(make([]byte, 32), []byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 32), make([]byte, 32))
	f.Add(append([]byte(nil), orderBytes...), []byte("d"))
	f.Add(append(make([]byte, 31), 1), bytes.Repeat([]byte{0xff}, 65))
	s := New(WithPoolSize(16), WithBatchSize(8))
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, scalar, digest []byte) {
		der, err := s.SignScalar(scalar, digest)
		key, kerr := NewPrivateKey(scalar)
		if kerr != nil {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		defer key.Destroy()
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(key.Public(), digest, der))
	})
}
