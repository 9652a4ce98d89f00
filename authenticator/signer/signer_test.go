package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// TestKnownAnswer pins the arithmetic to RFC 6979 appendix A.2.5 (P-256,
// SHA-256, message "sample"), feeding the RFC's k through WithRand.
func TestKnownAnswer(t *testing.T) {
	t.Parallel()
	key, err := NewPrivateKey(mustHex(t, "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"))
	require.NoError(t, err)
	k := mustHex(t, "A6E3C57DD01ABE90086538398355DD4C3B17AA873382B0F24D6129493D8AAD60")
	s := New(WithPoolSize(0), WithRand(bytes.NewReader(k)))
	defer s.Close()
	digest := sha256.Sum256([]byte("sample"))
	r, sig, err := s.SignRaw(key, digest[:])
	require.NoError(t, err)
	require.Equal(t, mustHex(t, "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"), r[:])
	require.Equal(t, mustHex(t, "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"), sig[:])
}

func TestSignVerifiesAcrossKeysAndDigests(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(64), WithBatchSize(16))
	defer s.Close()
	long := sha512.Sum512([]byte("longer than the order"))
	fixed := []struct {
		name   string
		digest []byte
	}{
		{"empty", nil},
		{"1 byte", []byte{0x42}},
		{"20 bytes (SHA-1 size)", long[:20]},
		{"all zero", make([]byte, 32)},
		{"all ff", bytes.Repeat([]byte{0xff}, 32)},
		{"48 bytes", long[:48]},
		{"64 bytes", long[:]},
		{"64 ff", bytes.Repeat([]byte{0xff}, 64)},
	}
	for i := range 300 {
		key, err := GenerateKey(nil)
		require.NoError(t, err)
		msg := make([]byte, i%97)
		_, _ = rand.Read(msg)
		h := sha256.Sum256(msg)
		digests := append(fixed, struct {
			name   string
			digest []byte
		}{"sha256", h[:]})
		for _, d := range digests {
			der, err := s.Sign(key, d.digest)
			require.NoError(t, err, d.name)
			require.True(t, ecdsa.VerifyASN1(key.Public(), d.digest, der), "%s: signature must verify", d.name)
		}
	}
	st := s.Stats()
	require.Equal(t, uint64(300*9), st.Hits+st.Misses)
}

func TestSignRawMatchesDER(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(0))
	defer s.Close()
	key, err := GenerateKey(nil)
	require.NoError(t, err)
	digest := sha256.Sum256([]byte("raw"))
	r, sig, err := s.SignRaw(key, digest[:])
	require.NoError(t, err)
	require.True(t, ecdsa.Verify(key.Public(), digest[:], new(big.Int).SetBytes(r[:]), new(big.Int).SetBytes(sig[:])))
}

// TestNoncesNeverRepeat collects r over thousands of signatures, through the
// pool and the inline path: a repeated r would mean a reused nonce.
func TestNoncesNeverRepeat(t *testing.T) {
	t.Parallel()
	for _, size := range []int{0, 8, DefaultPoolSize} {
		s := New(WithPoolSize(size))
		key, err := GenerateKey(nil)
		require.NoError(t, err)
		digest := sha256.Sum256([]byte("same message every time"))
		seen := make(map[[32]byte]bool)
		n := 3000
		if size == 0 {
			n = 500 // every pair inline: slower
		}
		for range n {
			r, _, err := s.SignRaw(key, digest[:])
			require.NoError(t, err)
			require.False(t, seen[r], "pool size %d: r repeated", size)
			seen[r] = true
		}
		s.Close()
	}
}

func TestDrainedPoolFallsBackInline(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(4), WithBatchSize(4))
	defer s.Close()
	key, err := GenerateKey(nil)
	require.NoError(t, err)
	digest := sha256.Sum256([]byte("drain"))
	for range 400 {
		der, err := s.Sign(key, digest[:])
		require.NoError(t, err)
		require.True(t, ecdsa.VerifyASN1(key.Public(), digest[:], der))
	}
	st := s.Stats()
	require.Equal(t, uint64(400), st.Hits+st.Misses)
	require.NotZero(t, st.Misses, "a 4-pair pool cannot keep up with 400 back-to-back signatures")
	require.LessOrEqual(t, st.Pooled, 4)
}

func TestFillAndStats(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(40), WithBatchSize(16))
	defer s.Close()
	require.NoError(t, s.Fill())
	st := s.Stats()
	require.Equal(t, 40, st.Pooled)
	require.GreaterOrEqual(t, st.Refilled, uint64(40))
	key, err := GenerateKey(nil)
	require.NoError(t, err)
	_, err = s.Sign(key, make([]byte, 32))
	require.NoError(t, err)
	require.Equal(t, uint64(1), s.Stats().Hits)
	require.Equal(t, uint64(0), s.Stats().Misses)
}

func TestPoolSlotWipedAfterUse(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(8), WithBatchSize(8))
	s.Close() // stop the refiller so the pool is ours to inspect
	p := newPool(2)
	batch := []pair{{kinv: [32]byte{1}, r: [32]byte{2}}, {kinv: [32]byte{3}, r: [32]byte{4}}}
	require.Equal(t, 2, p.push(batch))
	var got pair
	ok, left := p.pop(&got)
	require.True(t, ok)
	require.Equal(t, 1, left)
	require.Equal(t, batch[0], got)
	require.Equal(t, pair{}, p.slots[0], "taken slot is wiped")
	p.close()
	require.Equal(t, pair{}, p.slots[1], "close wipes remaining pairs")
	ok, _ = p.pop(&got)
	require.False(t, ok)
	require.Zero(t, p.push(batch), "closed pool accepts nothing")
	require.Zero(t, s.Stats().Pooled)
}

func TestConcurrentSigning(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(32), WithBatchSize(8))
	defer s.Close()
	keys := make([]*PrivateKey, 4)
	for i := range keys {
		var err error
		keys[i], err = GenerateKey(nil)
		require.NoError(t, err)
	}
	var mu sync.Mutex
	seen := make(map[[32]byte]bool)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			key := keys[g%len(keys)]
			for i := range 60 {
				digest := sha256.Sum256([]byte{byte(g), byte(i)})
				r, sig, err := s.SignRaw(key, digest[:])
				if err == nil && !ecdsa.Verify(key.Public(), digest[:], new(big.Int).SetBytes(r[:]), new(big.Int).SetBytes(sig[:])) {
					err = errors.New("signature does not verify")
				}
				mu.Lock()
				if seen[r] {
					err = errors.New("r repeated across goroutines")
				}
				seen[r] = true
				mu.Unlock()
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, seen, 16*60)
}

// TestCloseStopsRefiller relies on synctest: the bubble fails if any goroutine
// New started is still alive when the test function returns.
func TestCloseStopsRefiller(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := New(WithPoolSize(16), WithBatchSize(4))
		key, err := GenerateKey(nil)
		require.NoError(t, err)
		for range 40 {
			_, err := s.Sign(key, make([]byte, 32))
			require.NoError(t, err)
		}
		s.Close()
		s.Close() // idempotent
		require.Zero(t, s.Stats().Pooled, "Close wipes the pool")
		der, err := s.Sign(key, []byte("after close"))
		require.NoError(t, err, "a closed signer still signs, inline")
		require.True(t, ecdsa.VerifyASN1(key.Public(), []byte("after close"), der))
		require.NoError(t, s.Fill())
		require.Zero(t, s.Stats().Pooled, "Fill after Close adds nothing")
	})
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source broken") }

func TestRandFailureIsReported(t *testing.T) {
	t.Parallel()
	s := New(WithPoolSize(8), WithRand(failingReader{}))
	defer s.Close()
	key, err := GenerateKey(nil)
	require.NoError(t, err)
	_, err = s.Sign(key, make([]byte, 32))
	require.ErrorContains(t, err, "entropy source broken")
	require.Error(t, s.Fill())

	_, err = s.Sign(nil, make([]byte, 32))
	require.ErrorIs(t, err, ErrNoKey)
}
