package pinuv

import (
	"bytes"
	"crypto/aes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// The helpers below recompute each protocol step from the spec's definitions with
// the lowest-level primitives (HMAC for HKDF, the raw block cipher for CBC), so the
// package is checked against an independent derivation, not against itself.

func refHKDF(ikm, salt []byte, info string, n int) []byte {
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	var out, prev []byte
	for i := byte(1); len(out) < n; i++ {
		m := hmac.New(sha256.New, prk)
		m.Write(prev)
		m.Write([]byte(info))
		m.Write([]byte{i})
		prev = m.Sum(nil)
		out = append(out, prev...)
	}
	return out[:n]
}

func refCBCEncrypt(key, iv, pt []byte) []byte {
	b, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	out := make([]byte, 0, len(pt))
	chain := bytes.Clone(iv)
	for i := 0; i < len(pt); i += 16 {
		blk := make([]byte, 16)
		for j := range blk {
			blk[j] = pt[i+j] ^ chain[j]
		}
		b.Encrypt(blk, blk)
		out = append(out, blk...)
		chain = blk
	}
	return out
}

func refHMAC(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestKDFMatchesReference(t *testing.T) {
	t.Parallel()
	for range 16 {
		z := randBytes(t, ZSize)
		s1, err := V1{}.KDF(z)
		require.NoError(t, err)
		want1 := sha256.Sum256(z)
		require.Equal(t, want1[:], s1)

		s2, err := V2{}.KDF(z)
		require.NoError(t, err)
		salt := make([]byte, 32)
		want2 := append(refHKDF(z, salt, "CTAP2 HMAC key", 32), refHKDF(z, salt, "CTAP2 AES key", 32)...)
		require.Equal(t, want2, s2)
	}
	for _, p := range []Protocol{V1{}, V2{}} {
		_, err := p.KDF(make([]byte, 31))
		require.Error(t, err)
	}
}

func TestEncryptMatchesReference(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 16, 64, 160} {
		pt := randBytes(t, n)

		ss1 := randBytes(t, V1SecretSize)
		ct1, err := V1{}.Encrypt(ss1, pt)
		require.NoError(t, err)
		require.Equal(t, refCBCEncrypt(ss1, make([]byte, 16), pt), ct1)
		back, err := V1{}.Decrypt(ss1, ct1)
		require.NoError(t, err)
		require.Equal(t, pt, back)

		ss2 := randBytes(t, V2SecretSize)
		iv := randBytes(t, 16)
		ct2, err := V2{Rand: bytes.NewReader(iv)}.Encrypt(ss2, pt)
		require.NoError(t, err)
		require.Equal(t, append(bytes.Clone(iv), refCBCEncrypt(ss2[32:], iv, pt)...), ct2)
		back, err = V2{}.Decrypt(ss2, ct2)
		require.NoError(t, err)
		require.Equal(t, pt, back)
	}
}

func TestEncryptRejects(t *testing.T) {
	t.Parallel()
	_, err := V1{}.Encrypt(make([]byte, 32), make([]byte, 15))
	require.Error(t, err)
	_, err = V1{}.Encrypt(make([]byte, 64), make([]byte, 16))
	require.Error(t, err, "a protocol two secret is not a protocol one key")
	_, err = V2{}.Encrypt(make([]byte, 32), make([]byte, 16))
	require.Error(t, err, "a protocol one secret is not a protocol two key")
	_, err = V2{Rand: bytes.NewReader(nil)}.Encrypt(make([]byte, 64), make([]byte, 16))
	require.Error(t, err, "IV source exhausted")
	// V2 draws a fresh IV each time, so equal plaintexts give different ciphertexts.
	a, err := V2{}.Encrypt(make([]byte, 64), make([]byte, 16))
	require.NoError(t, err)
	b, err := V2{}.Encrypt(make([]byte, 64), make([]byte, 16))
	require.NoError(t, err)
	require.NotEqual(t, a, b)
}

func TestDecryptRejectsBadLengths(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		p      Protocol
		secret int
		ct     int
	}{
		{"v1 one byte", V1{}, 32, 1},
		{"v1 15 bytes", V1{}, 32, 15},
		{"v1 17 bytes", V1{}, 32, 17},
		{"v1 63 bytes", V1{}, 32, 63},
		{"v2 empty", V2{}, 64, 0},
		{"v2 15 bytes: shorter than the IV", V2{}, 64, 15},
		{"v2 IV plus 1", V2{}, 64, 17},
		{"v2 IV plus 31", V2{}, 64, 47},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := tc.p.Decrypt(make([]byte, tc.secret), make([]byte, tc.ct))
			require.ErrorIs(t, err, ErrCiphertext)
			require.ErrorIs(t, err, ctap.ErrInvalidParameter)
		})
	}
	_, err := V1{}.Decrypt(make([]byte, 16), make([]byte, 16))
	require.Error(t, err, "short secret")
	_, err = V2{}.Decrypt(make([]byte, 32), make([]byte, 32))
	require.Error(t, err, "short secret")
	out, err := V2{}.Decrypt(make([]byte, 64), make([]byte, 16))
	require.NoError(t, err, "an IV alone is an empty plaintext")
	require.Empty(t, out)
}

func TestAuthenticateMatchesReference(t *testing.T) {
	t.Parallel()
	msg := []byte("message to authenticate")
	ss1 := randBytes(t, V1SecretSize)
	require.Equal(t, refHMAC(ss1, msg)[:16], V1{}.Authenticate(ss1, msg))

	ss2 := randBytes(t, V2SecretSize)
	require.Equal(t, refHMAC(ss2[:32], msg), V2{}.Authenticate(ss2, msg), "v2 keys HMAC with the first half")
	token := NewToken(nil)
	require.Len(t, token, TokenSize)
	require.Equal(t, refHMAC(token, msg), V2{}.Authenticate(token, msg))
	require.Equal(t, refHMAC(token, msg)[:16], V1{}.Authenticate(token, msg))
}

func TestVerify(t *testing.T) {
	t.Parallel()
	msg := []byte("clientDataHash........32 bytes..")
	for _, p := range []Protocol{V1{}, V2{}} {
		key := NewToken(nil)
		sig := p.Authenticate(key, msg)
		require.True(t, p.Verify(key, msg, sig), "v%d", p.Version())
		for bit := 0; bit < len(sig)*8; bit++ {
			bad := bytes.Clone(sig)
			bad[bit/8] ^= 1 << (bit % 8)
			require.False(t, p.Verify(key, msg, bad), "v%d flipped bit %d", p.Version(), bit)
		}
		require.False(t, p.Verify(key, msg, sig[:len(sig)-1]))
		require.False(t, p.Verify(key, msg, append(bytes.Clone(sig), 0)))
		require.False(t, p.Verify(key, msg, nil))
		require.False(t, p.Verify(key, append(bytes.Clone(msg), 0), sig))
		require.False(t, p.Verify(NewToken(nil), msg, sig))
	}
	// The other protocol's signature length is wrong even when its prefix matches.
	key := NewToken(nil)
	full := refHMAC(key, msg)
	require.False(t, V1{}.Verify(key, msg, full), "v1 accepts only 16 bytes")
	require.False(t, V2{}.Verify(key, msg, full[:16]), "v2 accepts only 32 bytes")
}

func TestByVersion(t *testing.T) {
	t.Parallel()
	for _, v := range []int{1, 2} {
		p, ok := ByVersion(v)
		require.True(t, ok)
		require.Equal(t, v, p.Version())
	}
	for _, v := range []int{0, 3, -1} {
		_, ok := ByVersion(v)
		require.False(t, ok)
	}
}

func FuzzDecrypt(f *testing.F) {
	f.Add(uint8(1), make([]byte, 64), make([]byte, 32))
	f.Add(uint8(2), make([]byte, 64), make([]byte, 48))
	f.Add(uint8(2), make([]byte, 64), make([]byte, 15))
	f.Add(uint8(1), make([]byte, 32), []byte{1, 2, 3})
	f.Add(uint8(2), []byte{}, make([]byte, 16))
	f.Fuzz(func(t *testing.T, version uint8, secret, ct []byte) {
		if version%2 == 0 {
			p := V2{}
			pt, err := p.Decrypt(secret, ct)
			if err != nil {
				if len(secret) == V2SecretSize && len(ct) >= 16 && len(ct)%16 == 0 {
					t.Fatalf("well-formed input rejected: %v", err)
				}
				return
			}
			if len(pt) != len(ct)-16 {
				t.Fatalf("plaintext is %d bytes for %d of ciphertext", len(pt), len(ct))
			}
			// Re-encrypting with the same IV reproduces the ciphertext exactly.
			again, err := V2{Rand: bytes.NewReader(ct[:16])}.Encrypt(secret, pt)
			if err != nil || !bytes.Equal(again, ct) {
				t.Fatalf("re-encryption differs: %v", err)
			}
			return
		}
		p := V1{}
		pt, err := p.Decrypt(secret, ct)
		if err != nil {
			if !errors.Is(err, ErrCiphertext) && len(secret) == V1SecretSize {
				t.Fatalf("unexpected error kind: %v", err)
			}
			if len(secret) == V1SecretSize && len(ct)%16 == 0 {
				t.Fatalf("well-formed input rejected: %v", err)
			}
			return
		}
		if len(pt) != len(ct) {
			t.Fatalf("plaintext is %d bytes for %d of ciphertext", len(pt), len(ct))
		}
		again, err := p.Encrypt(secret, pt)
		if err != nil || !bytes.Equal(again, ct) {
			t.Fatalf("re-encryption differs: %v", err)
		}
	})
}
