package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func scalarBytes(v *big.Int) []byte {
	b := make([]byte, 32)
	v.FillBytes(b)
	return b
}

// scalarCase is a private scalar and whether it is valid (0 < d < n, 32 bytes).
type scalarCase struct {
	name   string
	scalar []byte
	ok     bool
}

// scalarCases are the edges of the scalar check, for every function that takes a scalar.
func scalarCases() []scalarCase {
	nm1 := new(big.Int).Sub(bigN, big.NewInt(1))
	return []scalarCase{
		{"empty", nil, false},
		{"31 bytes", make([]byte, 31), false},
		{"33 bytes", append([]byte{0}, scalarBytes(big.NewInt(1))...), false},
		{"zero", make([]byte, 32), false},
		{"one", scalarBytes(big.NewInt(1)), true},
		{"n-1", scalarBytes(nm1), true},
		{"n", scalarBytes(bigN), false},
		{"n+1", scalarBytes(new(big.Int).Add(bigN, big.NewInt(1))), false},
		{"all ff", bytes.Repeat([]byte{0xff}, 32), false},
	}
}

func TestNewPrivateKeyValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range scalarCases() {
		k, err := NewPrivateKey(tc.scalar)
		if !tc.ok {
			require.ErrorIs(t, err, ErrInvalidKey, tc.name)
			continue
		}
		require.NoError(t, err, tc.name)
		want, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), tc.scalar)
		require.NoError(t, err)
		require.True(t, want.PublicKey.Equal(k.Public()), tc.name)
		got, err := k.Bytes()
		require.NoError(t, err)
		require.Equal(t, tc.scalar, got, tc.name)
	}
}

func TestPrivateKeyConversions(t *testing.T) {
	t.Parallel()
	std, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	k, err := PrivateKeyFromECDSA(std)
	require.NoError(t, err)
	require.True(t, std.PublicKey.Equal(k.Public()))
	back, err := k.ECDSA()
	require.NoError(t, err)
	require.True(t, std.Equal(back))

	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	_, err = PrivateKeyFromECDSA(p384)
	require.ErrorIs(t, err, ErrInvalidKey)
	_, err = PrivateKeyFromECDSA(nil)
	require.ErrorIs(t, err, ErrInvalidKey)
}

func TestGenerateKeyRejectsOutOfRange(t *testing.T) {
	t.Parallel()
	// First draw is n (invalid), second is zero (invalid), third is 7.
	stream := append(append(scalarBytes(bigN), make([]byte, 32)...), scalarBytes(big.NewInt(7))...)
	k, err := GenerateKey(bytes.NewReader(stream))
	require.NoError(t, err)
	got, err := k.Bytes()
	require.NoError(t, err)
	require.Equal(t, scalarBytes(big.NewInt(7)), got)

	_, err = GenerateKey(bytes.NewReader(make([]byte, 10)))
	require.Error(t, err, "short randomness must fail, not loop")

	k, err = GenerateKey(nil)
	require.NoError(t, err)
	require.NotNil(t, k.Public())
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey(nil)
	require.NoError(t, err)
	d := k.d
	pub := k.Public()
	k.Destroy()
	k.Destroy() // idempotent
	require.Equal(t, uint(1), d.IsZero(), "scalar memory wiped")
	_, err = k.Bytes()
	require.ErrorIs(t, err, ErrKeyDestroyed)
	_, err = k.ECDSA()
	require.ErrorIs(t, err, ErrKeyDestroyed)
	s := New(WithPoolSize(0))
	defer s.Close()
	_, err = s.Sign(k, make([]byte, 32))
	require.ErrorIs(t, err, ErrKeyDestroyed)
	require.Same(t, pub, k.Public())
}

func TestPrivateKeyNeverFormatsScalar(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey(nil)
	require.NoError(t, err)
	raw, err := k.Bytes()
	require.NoError(t, err)
	limbs := fmt.Sprint(k.d.Bits())
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		for _, arg := range []any{k, []*PrivateKey{k}, struct{ K *PrivateKey }{k}} {
			out := fmt.Sprintf(verb, arg)
			require.NotContains(t, strings.ToLower(out), hex.EncodeToString(raw), verb)
			require.NotContains(t, out, strings.Trim(limbs, "[]"), verb)
		}
	}
}

// TestPublicIsLazyAndRight checks the deferred public key: nothing is computed
// at parse time, the first Public matches crypto/ecdsa for many random keys
// (also when several goroutines race to compute it), later calls return the
// cached value, and a key destroyed unused has no public key rather than a
// wrong one.
func TestPublicIsLazyAndRight(t *testing.T) {
	t.Parallel()
	for range 64 {
		std, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		raw, err := std.Bytes()
		require.NoError(t, err)
		k, err := NewPrivateKey(raw)
		require.NoError(t, err)
		require.Nil(t, k.pub, "public key must not be computed at parse time")
		got := make(chan *ecdsa.PublicKey, 4)
		for range cap(got) {
			go func() { got <- k.Public() }()
		}
		first := <-got
		require.True(t, std.PublicKey.Equal(first))
		for range cap(got) - 1 {
			require.Same(t, first, <-got, "every caller sees the one cached key")
		}
		k.Destroy()
		require.Same(t, first, k.Public(), "a computed public key survives Destroy")
	}

	k, err := GenerateKey(nil)
	require.NoError(t, err)
	k.Destroy()
	require.Nil(t, k.Public(), "no scalar left to derive from")
}
