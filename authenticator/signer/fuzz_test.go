package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzSign signs arbitrary digests with keys derived from a seed; every
// signature must verify and be minimal DER.
func FuzzSign(f *testing.F) {
	f.Add([]byte("seed"), []byte{})
	f.Add([]byte("seed"), make([]byte, 32))
	f.Add([]byte{1}, bytes.Repeat([]byte{0xff}, 32))
	f.Add([]byte{2}, bytes.Repeat([]byte{0xff}, 65))
	f.Add([]byte{}, []byte("a message used as a short digest"))
	s := New(WithPoolSize(16), WithBatchSize(8))
	f.Cleanup(s.Close)
	f.Fuzz(func(t *testing.T, seed, digest []byte) {
		sum := sha256.Sum256(seed)
		key, err := NewPrivateKey(sum[:])
		if err != nil {
			t.Skip("seed hashed to an invalid scalar")
		}
		defer key.Destroy()
		der, err := s.Sign(key, digest)
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(key.Public(), digest, der))
		var sig struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &sig)
		require.NoError(t, err)
		require.Empty(t, rest)
		canonical, err := asn1.Marshal(sig)
		require.NoError(t, err)
		require.Equal(t, canonical, der, "DER must be minimal")
	})
}

// FuzzNewPrivateKey checks the scalar parser against math/big and crypto/ecdsa.
func FuzzNewPrivateKey(f *testing.F) {
	f.Add(make([]byte, 32))
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Add(append([]byte(nil), orderBytes...))
	f.Add([]byte{1})
	f.Add(append(make([]byte, 31), 1))
	f.Fuzz(func(t *testing.T, scalar []byte) {
		k, err := NewPrivateKey(scalar)
		v := new(big.Int).SetBytes(scalar)
		valid := len(scalar) == 32 && v.Sign() > 0 && v.Cmp(bigN) < 0
		if !valid {
			require.ErrorIs(t, err, ErrInvalidKey)
			return
		}
		require.NoError(t, err)
		got, err := k.Bytes()
		require.NoError(t, err)
		require.Equal(t, scalar, got)
		want, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
		require.NoError(t, err)
		require.True(t, want.PublicKey.Equal(k.Public()))
	})
}
