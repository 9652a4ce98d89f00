package store

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func benchStores(b *testing.B) map[string]func(b *testing.B) Store {
	return map[string]func(b *testing.B) Store{
		"file": func(b *testing.B) Store {
			s, err := OpenFile(filepath.Join(b.TempDir(), "key.db"))
			require.NoError(b, err)
			b.Cleanup(func() { _ = s.Close() })
			return s
		},
		"memory": func(b *testing.B) Store { return NewMemory() },
		"file-sealed": func(b *testing.B) Store {
			s, err := OpenFile(filepath.Join(b.TempDir(), "key.db"), WithStateKey(testStateKey))
			require.NoError(b, err)
			b.Cleanup(func() { _ = s.Close() })
			return s
		},
	}
}

// BenchmarkNextSignCount measures the per-assertion counter cost; the file store pays one
// fsync per DefaultCounterReserve values.
func BenchmarkNextSignCount(b *testing.B) {
	for _, name := range []string{"file", "memory"} {
		b.Run(name, func(b *testing.B) {
			s := benchStores(b)[name](b)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.NextSignCount(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPutResident measures a makeCredential's store write (one fsynced transaction for
// the file store), with 25 credentials already on the key.
func BenchmarkPutResident(b *testing.B) {
	for _, name := range []string{"file", "file-sealed", "memory"} {
		b.Run(name, func(b *testing.B) {
			s := benchStores(b)[name](b)
			for i := range 25 {
				require.NoError(b, s.PutResident(testCredFor(1000, i)))
			}
			c := testCred("bench.example", []byte("u"))
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				c.ID = binary.BigEndian.AppendUint64(c.ID[:0:0], i)
				if err := s.PutResident(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkResident measures the getAssertion lookup of an RP's credentials (25 of them; sealed,
// each one's index entry and record are opened).
func BenchmarkResident(b *testing.B) {
	for _, name := range []string{"file", "file-sealed", "memory"} {
		b.Run(name, func(b *testing.B) {
			s := benchStores(b)[name](b)
			for i := range 25 {
				require.NoError(b, s.PutResident(testCredFor(1000, i)))
			}
			b.ReportAllocs()
			for b.Loop() {
				cs, err := s.Resident("example.com")
				if err != nil || len(cs) != 25 {
					b.Fatal(err, len(cs))
				}
			}
		})
	}
}

// BenchmarkSealedValue is what sealing adds to one stored value: a credential record sealed on
// write and opened on read (AES-256-GCM with its place as additional data). A discoverable
// credential's getAssertion opens one such record per credential of the RP.
func BenchmarkSealedValue(b *testing.B) {
	s, err := testStateKey.sealer(make([]byte, sealSaltLen))
	require.NoError(b, err)
	rec, err := encodeCredential(testCred("example.com", []byte("user")))
	require.NoError(b, err)
	sealed := s.seal(bucketCred, []byte("credential-id"), rec)
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			if _, ok := s.open(bucketCred, []byte("credential-id"), sealed); !ok {
				b.Fatal("does not open")
			}
		}
	})
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(rec)))
		for b.Loop() {
			s.seal(bucketCred, []byte("credential-id"), rec)
		}
	})
	b.Run("decode-credential", func(b *testing.B) { // the unsealed read's own work, for scale
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeCredential(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
