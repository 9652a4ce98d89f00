package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	bolt "go.etcd.io/bbolt"
)

// realState writes a state file with n resident credentials, a PIN, settings and a blob, and
// returns its bytes.
func realState(t testing.TB, n int) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.state")
	s, err := OpenFile(path)
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, s.PutResident(testCred(fmt.Sprintf("rp%d.example", i%7), []byte{byte(i), byte(i >> 8)})))
	}
	require.NoError(t, s.PutPIN(PIN{Set: true, Hash: bytes.Repeat([]byte{9}, PINHashLen), CodePoints: 4, Retries: 8}))
	require.NoError(t, s.PutSettings(Settings{MinPINLength: 6}))
	require.NoError(t, s.PutBlob("attestation/default", bytes.Repeat([]byte("ca"), 300)))
	require.NoError(t, s.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func sum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return sha256.Sum256(b)
}

// Only a missing path makes a new key: every existing file that is not a fidolab state is refused
// by name of what is wrong, and left exactly as it was.
func TestOpenRefusesWhatIsNotAState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	foreign := filepath.Join(dir, "other.db")
	db, err := bolt.Open(foreign, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("invoices"))
		if err != nil {
			return err
		}
		return b.Put([]byte("2024-001"), []byte("paid"))
	}))
	require.NoError(t, db.Close())
	emptyBolt := filepath.Join(dir, "empty-bolt.db")
	db, err = bolt.Open(emptyBolt, 0o600, nil)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	files := map[string]struct {
		data []byte
		path string
		want string
	}{
		"empty":           {data: []byte{}, want: "the file is empty (0 bytes)"},
		"text":            {data: []byte("not a state file, just some notes\n"), want: "too short"},
		"zeros":           {data: make([]byte, 16384), want: "no bbolt header"},
		"random":          {data: bytes.Repeat([]byte("\x8a\x13\xf0\x55"), 8192), want: "no bbolt header"},
		"another program": {path: foreign, want: "without fidolab's records"},
		"empty bbolt":     {path: emptyBolt, want: "without fidolab's records"},
	}
	for name, f := range files {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := f.path
			if path == "" {
				path = filepath.Join(t.TempDir(), "key.state")
				require.NoError(t, os.WriteFile(path, f.data, 0o600))
			}
			before := sum(t, path)
			_, err := OpenFile(path)
			require.ErrorIs(t, err, ErrNotState)
			require.ErrorContains(t, err, f.want)
			require.ErrorContains(t, err, "only where no file exists")
			require.Equal(t, before, sum(t, path), "the file was not changed")
		})
	}
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		_, err := OpenFile(t.TempDir())
		require.ErrorIs(t, err, ErrNotState)
		require.ErrorContains(t, err, "directory")
	})
	t.Run("named pipe", func(t *testing.T) { // opening one would block forever
		t.Parallel()
		path := filepath.Join(t.TempDir(), "fifo")
		require.NoError(t, syscall.Mkfifo(path, 0o600))
		_, err := OpenFile(path)
		require.ErrorIs(t, err, ErrNotState)
		require.ErrorContains(t, err, "named pipe")
	})
}

func TestNewStateAppearsComplete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.state")
	s, err := OpenFile(path)
	require.NoError(t, err)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file beside the new state")
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	_, err = OpenFile(path, WithLockTimeout(0))
	require.ErrorIs(t, err, ErrLocked, "the new state is locked from its first moment at path")
	require.NoError(t, s.Close())
	s, err = OpenFile(path)
	require.NoError(t, err, "and is a complete state")
	require.NoError(t, s.Close())
}

// TestOpenTruncated cuts a real state file at every page boundary and in the middle of pages
// (bbolt maps the file: before the structure check, 8 to 20 KiB cuts died with SIGBUS).
func TestOpenTruncated(t *testing.T) {
	t.Parallel()
	orig := realState(t, 40)
	require.Greater(t, len(orig), 6*4096)
	dir := t.TempDir()
	for n := 1; n < len(orig); n += 512 {
		path := filepath.Join(dir, fmt.Sprintf("cut%d.state", n))
		require.NoError(t, os.WriteFile(path, orig[:n], 0o600))
		s, err := OpenFile(path)
		if err == nil {
			// A cut that only removed unused tail pages leaves a good state: it must read fine.
			readAll(t, s)
			require.NoError(t, s.Close())
			continue
		}
		require.True(t, errors.Is(err, ErrDamaged) || errors.Is(err, ErrNotState), "cut at %d: %v", n, err)
		if n >= 8192 {
			require.ErrorIs(t, err, ErrDamaged, "cut at %d", n)
			require.ErrorContains(t, err, "restore it from a backup")
		}
	}
}

// TestOpenBitFlips flips bits all over a real state file (data pages died with SIGSEGV, or looped,
// before the structure check). Whatever happens must be an error or a working store.
func TestOpenBitFlips(t *testing.T) {
	t.Parallel()
	orig := realState(t, 40)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	rounds := 400
	if testing.Short() {
		rounds = 100
	}
	var opened, refused int
	for i := range rounds {
		data := bytes.Clone(orig)
		for range 1 + rng.IntN(4) {
			data[rng.IntN(len(data))] ^= 1 << rng.IntN(8)
		}
		path := filepath.Join(dir, fmt.Sprintf("flip%d.state", i))
		require.NoError(t, os.WriteFile(path, data, 0o600))
		s, err := OpenFile(path)
		if err != nil {
			requireFileError(t, err)
			refused++
			continue
		}
		opened++
		exercise(t, s)
		_ = s.Close()
	}
	t.Logf("%d opened, %d refused", opened, refused)
	require.Positive(t, refused)
}

func requireFileError(t testing.TB, err error) {
	t.Helper()
	for _, want := range []error{ErrDamaged, ErrNotState, ErrCorrupt, ErrVersion} {
		if errors.Is(err, want) {
			return
		}
	}
	t.Fatalf("unexpected kind of error: %v", err)
}

// exercise reads everything and writes a little; errors are allowed, if they are the store's.
func exercise(t testing.TB, s Store) {
	t.Helper()
	check := func(err error) {
		if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrInvalid) {
			requireFileError(t, err)
		}
	}
	rps, err := s.ResidentRPs()
	check(err)
	for _, rp := range rps {
		cs, err := s.Resident(rp.ID)
		check(err)
		for _, c := range cs {
			_, err := s.ResidentByID(c.ID)
			check(err)
		}
	}
	_, err = s.CountResident()
	check(err)
	_, err = s.PIN()
	check(err)
	_, err = s.Settings()
	check(err)
	_, err = s.Fingerprints()
	check(err)
	_, err = s.LargeBlobs()
	check(err)
	_, err = s.Secrets()
	check(err)
	_, err = s.Blob("attestation/default")
	check(err)
	check(s.PutResident(testCred("new.example", []byte("n"))))
	_, err = s.NextSignCount()
	check(err)
}

// readAll is exercise for a store that must be intact.
func readAll(t *testing.T, s Store) {
	t.Helper()
	n, err := s.CountResident()
	require.NoError(t, err)
	require.Equal(t, 40, n)
	for i := range 7 {
		_, err := s.Resident(fmt.Sprintf("rp%d.example", i))
		require.NoError(t, err)
	}
	_, err = s.Blob("attestation/default")
	require.NoError(t, err)
}

// The structure check must accept every file bbolt writes: a long random workload (inserts,
// overwrites, deletes, resets; branch pages, overflow pages, a growing freelist) with the file
// checked after every batch.
func TestCheckFileAcceptsWhatBboltWrites(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.state")
	rng := rand.New(rand.NewPCG(5, 6))
	var ids [][]byte
	batches := 30
	if testing.Short() {
		batches = 8
	}
	for batch := range batches {
		s, err := OpenFile(path)
		require.NoError(t, err, "batch %d", batch)
		for range 40 {
			switch r := rng.IntN(10); {
			case r < 6:
				c := testCred(fmt.Sprintf("rp%d.example", rng.IntN(30)), []byte{byte(rng.IntN(50))})
				c.CredBlob = bytes.Repeat([]byte{1}, rng.IntN(maxCredBlobLen))
				require.NoError(t, s.PutResident(c))
				ids = append(ids, c.ID)
			case r < 9 && len(ids) > 0:
				i := rng.IntN(len(ids))
				err := s.DeleteResident(ids[i])
				require.True(t, err == nil || errors.Is(err, ErrNotFound))
				ids = append(ids[:i], ids[i+1:]...)
			case r == 9 && rng.IntN(20) == 0:
				require.NoError(t, s.Reset())
			default:
				require.NoError(t, s.PutBlob(fmt.Sprintf("b%d", rng.IntN(5)), bytes.Repeat([]byte{2}, rng.IntN(9000))))
			}
		}
		require.NoError(t, s.Close())
		f, err := os.Open(path)
		require.NoError(t, err)
		require.NoError(t, checkFile(f), "batch %d", batch)
		f.Close()
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	t.Logf("final size %d bytes", fi.Size())
}

// A file cut short under a running key (by another program: the lock is only advisory) makes the
// mapped pages fault. That must be an error on the call that meets it, and on every later one:
// the mapping is not trusted again.
func TestFaultWhileServingIsAnError(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.state")
	s, err := OpenFile(path)
	require.NoError(t, err)
	for i := range 60 {
		require.NoError(t, s.PutResident(testCred(fmt.Sprintf("rp%d.example", i%5), []byte{byte(i)})))
	}
	require.NoError(t, os.Truncate(path, 4096))
	var faulted error
	for i := range 5 {
		if _, err := s.Resident(fmt.Sprintf("rp%d.example", i)); err != nil {
			faulted = err
			break
		}
	}
	require.ErrorIs(t, faulted, ErrDamaged)
	require.ErrorContains(t, faulted, "memory fault")
	_, err = s.PIN()
	require.ErrorIs(t, err, ErrDamaged, "nothing is read from the mapping after a fault")
	require.Error(t, s.PutResident(testCred("after.example", []byte("x"))))
	start := time.Now()
	require.ErrorIs(t, s.Close(), ErrDamaged, "Close reports the fault")
	require.Less(t, time.Since(start), 10*time.Second, "Close does not hang on locks the fault left held")
}
