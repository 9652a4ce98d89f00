package store

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPIN(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		p, err := s.PIN()
		require.NoError(t, err)
		require.Equal(t, PIN{Retries: DefaultPINRetries}, p)

		want := PIN{Set: true, Hash: bytes.Repeat([]byte{7}, PINHashLen), CodePoints: 6, Retries: 5, ForceChange: true}
		require.NoError(t, s.PutPIN(want))
		s.reopen(t, true)
		p, err = s.PIN()
		require.NoError(t, err)
		require.Equal(t, want, p)

		for name, bad := range map[string]PIN{
			"short hash":       {Set: true, Hash: []byte{1}, Retries: 8},
			"hash without set": {Hash: bytes.Repeat([]byte{7}, PINHashLen), Retries: 8},
			"negative retries": {Retries: -1},
		} {
			require.ErrorIs(t, s.PutPIN(bad), ErrInvalid, name)
		}
	})
}

func TestSettings(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		st, err := s.Settings()
		require.NoError(t, err)
		require.Equal(t, Settings{}, st)
		want := Settings{AlwaysUV: true, EnterpriseAttestation: true, MinPINLength: 8, MinPINLengthRPIDs: []string{"a.example", "b.example"}}
		require.NoError(t, s.PutSettings(want))
		s.reopen(t, true)
		st, err = s.Settings()
		require.NoError(t, err)
		require.Equal(t, want, st)
		require.ErrorIs(t, s.PutSettings(Settings{MinPINLength: -1}), ErrInvalid)
		require.ErrorIs(t, s.PutSettings(Settings{MinPINLengthRPIDs: []string{""}}), ErrInvalid)
	})
}

func TestFingerprints(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		fs, err := s.Fingerprints()
		require.NoError(t, err)
		require.Empty(t, fs)
		// IDs chosen so byte order differs from enrollment order.
		for _, id := range []string{"z", "a", "m"} {
			require.NoError(t, s.PutFingerprint(Fingerprint{TemplateID: []byte(id), FriendlyName: "finger " + id}))
		}
		require.NoError(t, s.PutFingerprint(Fingerprint{TemplateID: []byte("a"), FriendlyName: "renamed"}))
		require.NoError(t, s.DeleteFingerprint([]byte("z")))
		require.ErrorIs(t, s.DeleteFingerprint([]byte("z")), ErrNotFound)
		require.ErrorIs(t, s.PutFingerprint(Fingerprint{}), ErrInvalid)
		s.reopen(t, false)
		fs, err = s.Fingerprints()
		require.NoError(t, err)
		require.Equal(t, []Fingerprint{
			{TemplateID: []byte("a"), FriendlyName: "renamed"},
			{TemplateID: []byte("m"), FriendlyName: "finger m"},
		}, fs)
	})
}

func TestLargeBlobs(t *testing.T) {
	t.Parallel()
	sum := sha256.Sum256([]byte{0x80})
	require.Equal(t, append([]byte{0x80}, sum[:16]...), InitialLargeBlobs, "the spec's initial array")
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		b, err := s.LargeBlobs()
		require.NoError(t, err)
		require.Equal(t, InitialLargeBlobs, b)
		b[0] = 0 // must not alter the package's initial value
		want := bytes.Repeat([]byte{0x42}, 2048)
		require.NoError(t, s.PutLargeBlobs(want))
		s.reopen(t, true)
		b, err = s.LargeBlobs()
		require.NoError(t, err)
		require.Equal(t, want, b)
		require.ErrorIs(t, s.PutLargeBlobs([]byte{0x80}), ErrInvalid)
		require.NoError(t, s.Reset())
		b, err = s.LargeBlobs()
		require.NoError(t, err)
		require.Equal(t, []byte{0x80}, b[:1])
	})
}

func TestBlobs(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		_, err := s.Blob("attestation-ca")
		require.ErrorIs(t, err, ErrNotFound)
		require.NoError(t, s.PutBlob("attestation-ca", []byte("cert")))
		require.NoError(t, s.PutBlob("empty", nil))
		require.ErrorIs(t, s.PutBlob("", []byte("x")), ErrInvalid)
		_, err = s.Blob(string(make([]byte, MaxBlobNameLen+1)))
		require.ErrorIs(t, err, ErrInvalid)
		s.reopen(t, true)
		b, err := s.Blob("attestation-ca")
		require.NoError(t, err)
		require.Equal(t, []byte("cert"), b)
		b, err = s.Blob("empty")
		require.NoError(t, err)
		require.Empty(t, b)
	})
}

func TestReset(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t, WithCounterReserve(4))
		c := testCred("example.com", []byte("u"))
		require.NoError(t, s.PutResident(c))
		require.NoError(t, s.PutPIN(PIN{Set: true, Hash: make([]byte, PINHashLen), Retries: 3}))
		require.NoError(t, s.PutSettings(Settings{AlwaysUV: true, MinPINLength: 6}))
		require.NoError(t, s.PutFingerprint(Fingerprint{TemplateID: []byte{1}}))
		require.NoError(t, s.PutLargeBlobs(bytes.Repeat([]byte{1}, 40)))
		require.NoError(t, s.PutBlob("persona", []byte("ca")))
		var last uint32
		for range 10 {
			v, err := s.NextSignCount()
			require.NoError(t, err)
			last = v
		}

		require.NoError(t, s.Reset())
		s.reopen(t, false)

		n, err := s.CountResident()
		require.NoError(t, err)
		require.Zero(t, n)
		got, err := s.Resident("example.com")
		require.NoError(t, err)
		require.Empty(t, got)
		rps, err := s.ResidentRPs()
		require.NoError(t, err)
		require.Empty(t, rps)
		p, err := s.PIN()
		require.NoError(t, err)
		require.Equal(t, PIN{Retries: DefaultPINRetries}, p)
		st, err := s.Settings()
		require.NoError(t, err)
		require.Equal(t, Settings{}, st)
		fs, err := s.Fingerprints()
		require.NoError(t, err)
		require.Empty(t, fs)
		lb, err := s.LargeBlobs()
		require.NoError(t, err)
		require.Equal(t, InitialLargeBlobs, lb)
		b, err := s.Blob("persona")
		require.NoError(t, err)
		require.Equal(t, []byte("ca"), b, "persona blobs survive Reset")
		v, err := s.NextSignCount()
		require.NoError(t, err)
		require.Greater(t, v, last, "the counter never goes back, not even on Reset")

		c2 := testCred("example.com", []byte("u"))
		require.NoError(t, s.PutResident(c2))
		require.Greater(t, c2.Created, c.Created)
	})
}

func TestSignCountMonotonic(t *testing.T) {
	t.Parallel()
	for _, reserve := range []uint32{1, 7, DefaultCounterReserve} {
		t.Run(fmt.Sprint("reserve", reserve), func(t *testing.T) {
			t.Parallel()
			forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
				s := open(t, WithCounterReserve(reserve))
				var last uint32
				next := func() uint32 {
					v, err := s.NextSignCount()
					require.NoError(t, err)
					require.Greater(t, v, last)
					last = v
					return v
				}
				require.Equal(t, uint32(1), next())
				for range 20 {
					next()
				}
				// A clean restart continues without a gap.
				before := last
				s.reopen(t, false)
				require.Equal(t, before+1, next())
				// A crash may skip the rest of the reserved range, never repeat.
				for i := range 3 {
					for range i * 5 {
						next()
					}
					s.reopen(t, true)
					next()
					require.LessOrEqual(t, last, before+uint32(100)+reserve*uint32(i+2))
				}
			})
		})
	}
}

func TestSignCountExhausted(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		rawPut(t, s.Store, bucketMeta, keyCountMark, encodeUint(1<<32-3))
		s.reopen(t, true)
		for _, want := range []uint32{1<<32 - 2, 1<<32 - 1} {
			v, err := s.NextSignCount()
			require.NoError(t, err)
			require.Equal(t, want, v)
		}
		_, err := s.NextSignCount()
		require.ErrorIs(t, err, ErrCounterExhausted)
	})
}

func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t, WithCounterReserve(8))
		const workers, each = 8, 50
		var mu sync.Mutex
		seen := make(map[uint32]bool)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					v, err := s.NextSignCount()
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					dup := seen[v]
					seen[v] = true
					mu.Unlock()
					if dup {
						errs <- fmt.Errorf("counter %d handed out twice", v)
						return
					}
					if i%10 == 0 {
						if err := s.PutResident(testCredFor(w, i)); err != nil {
							errs <- err
							return
						}
						if _, err := s.Resident("example.com"); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
		require.Len(t, seen, workers*each)
		n, err := s.CountResident()
		require.NoError(t, err)
		require.Equal(t, workers*each/10, n)
	})
}

// testCredFor builds a credential without the shared counter, for use from goroutines.
func testCredFor(w, i int) *Credential {
	return &Credential{
		ID:         []byte(fmt.Sprintf("w%d-i%d", w, i)),
		RPID:       "example.com",
		UserID:     []byte(fmt.Sprintf("user-%d-%d", w, i)),
		Alg:        -7,
		PrivateKey: []byte{1, 2, 3},
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		_, err := s.NextSignCount() // leaves a reserved range in memory
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.ErrorIs(t, s.Close(), ErrClosed)
		_, err = s.Secrets()
		require.ErrorIs(t, err, ErrClosed)
		require.ErrorIs(t, s.PutResident(testCred("example.com", []byte("u"))), ErrClosed)
		_, err = s.NextSignCount()
		require.ErrorIs(t, err, ErrClosed)
		_, err = s.PIN()
		require.ErrorIs(t, err, ErrClosed)
	})
}

func TestCorruptRecords(t *testing.T) {
	t.Parallel()
	badCRC := frame([]byte{0xA0})
	badCRC[len(badCRC)-1] ^= 1
	otherFormat := frame([]byte{0xA0})
	otherFormat[0] = 2
	garbage := [][]byte{
		{0xFF}, {formatV1}, badCRC, otherFormat,
		frame([]byte{0xA1}),                                     // truncated map
		frame([]byte{0xA1, 0x01, 0x40}),                         // decodes, but an empty ID breaks the invariants
		frame([]byte{0x80}),                                     // wrong type
		frame([]byte{0xA2, 0x01, 0x41, 0x01, 0x01, 0x41, 0x02}), // duplicate key
	}
	forEach(t, func(t *testing.T, open func(*testing.T, ...Option) *subject) {
		s := open(t)
		good := testCred("example.com", []byte("good"))
		require.NoError(t, s.PutResident(good))
		for i, g := range garbage {
			bad := testCred("example.com", []byte("bad"))
			require.NoError(t, s.PutResident(bad))
			rawPut(t, s.Store, bucketCred, bad.ID, g)
			_, err := s.ResidentByID(bad.ID)
			require.ErrorIs(t, err, ErrCorrupt, i)
			_, err = s.Resident("example.com")
			require.ErrorIs(t, err, ErrCorrupt, i)
			_, err = s.ResidentRPs()
			require.ErrorIs(t, err, ErrCorrupt, i)
			// A damaged credential can still be deleted, and takes its slot index with it.
			require.NoError(t, s.DeleteResident(bad.ID), i)
			got, err := s.Resident("example.com")
			require.NoError(t, err, i)
			require.Equal(t, ids([]*Credential{good}), ids(got))
		}

		// A record that decodes but is filed under another credential's ID.
		other := testCred("example.com", []byte("other"))
		require.NoError(t, s.PutResident(other))
		moved, err := encodeCredential(good)
		require.NoError(t, err)
		rawPut(t, s.Store, bucketCred, other.ID, moved)
		_, err = s.ResidentByID(other.ID)
		require.ErrorIs(t, err, ErrCorrupt)
		require.NoError(t, s.DeleteResident(other.ID))
		got, err := s.ResidentByID(good.ID)
		require.NoError(t, err, "the real record is untouched")
		require.Equal(t, good.ID, got.ID)

		rawPut(t, s.Store, bucketMeta, keyPIN, frame([]byte{0xA1, 0x04, 0x20})) // retries -1
		_, err = s.PIN()
		require.ErrorIs(t, err, ErrCorrupt)
		rawPut(t, s.Store, bucketMeta, keySettings, []byte{2})
		_, err = s.Settings()
		require.ErrorIs(t, err, ErrCorrupt)
		rawPut(t, s.Store, bucketFinger, []byte{1}, frame([]byte{0x80}))
		_, err = s.Fingerprints()
		require.ErrorIs(t, err, ErrCorrupt)
		rawPut(t, s.Store, bucketMeta, keyMaster, encodeRaw([]byte{1, 2, 3}))
		_, err = s.Secrets()
		require.ErrorIs(t, err, ErrCorrupt)
	})
}

func TestSecretsStayOutOfStrings(t *testing.T) {
	t.Parallel()
	c := testCred("example.com", []byte("u"))
	c.PrivateKey = []byte{0xDE, 0xAD, 0xBE, 0xEF, 0x01}
	c.CredRandomUV = bytes.Repeat([]byte{0xC0}, 32)
	c.LargeBlobKey = bytes.Repeat([]byte{0xB1}, 32)
	p := PIN{Set: true, Hash: bytes.Repeat([]byte{0x5E}, PINHashLen), Retries: 8}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c) + fmt.Sprintf(format, p) + fmt.Sprintf(format, *c)
		for _, secret := range []string{"deadbeef", "c0c0c0", "b1b1b1", "5e5e5e", "222 173 190", "[222"} {
			require.NotContains(t, out, secret, format)
		}
		require.Contains(t, out, "example.com")
	}
}
