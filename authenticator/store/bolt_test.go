package store

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/stretchr/testify/require"
)

func TestFileMode0600(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.db")
	s, err := OpenFile(path)
	require.NoError(t, err)
	require.NoError(t, s.PutResident(testCred("example.com", []byte("u"))))
	require.NoError(t, s.Close())
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
}

func TestFileModeTooOpenRefused(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		path := filepath.Join(t.TempDir(), "key.db")
		s, err := OpenFile(path)
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.NoError(t, os.Chmod(path, mode))
		_, err = OpenFile(path)
		require.ErrorIs(t, err, ErrPermissions, "mode %04o", mode)
		require.Contains(t, err.Error(), "chmod 600")
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, mode, fi.Mode().Perm(), "refused, not silently changed")
	}
}

func TestFileLockedFailsFast(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.db")
	s, err := OpenFile(path)
	require.NoError(t, err)
	defer s.Close()
	wall := clock.Real{} // bbolt's lock timeout is wall time
	start := wall.Now()
	_, err = OpenFile(path, WithLockTimeout(50*time.Millisecond))
	require.ErrorIs(t, err, ErrLocked)
	require.Less(t, wall.Now().Sub(start), 2*time.Second)
	require.NoError(t, s.Close())
	s2, err := OpenFile(path)
	require.NoError(t, err, "the lock goes with Close")
	require.NoError(t, s2.Close())
}

func TestFileNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.db")
	s, err := OpenFile(path)
	require.NoError(t, err)
	rawPut(t, s, bucketMeta, keyVersion, encodeUint(schemaVersion+1))
	require.NoError(t, s.Close())
	_, err = OpenFile(path)
	require.ErrorIs(t, err, ErrVersion)
}

func TestOpenRejectsCorruptMeta(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ key, val []byte }{
		"counter mark":      {keyCountMark, frame([]byte{1})},
		"counter checksum":  {keyCountMark, []byte{formatV1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
		"counter too large": {keyCountMark, encodeUint(1 << 33)},
		"master secret":     {keyMaster, encodeRaw([]byte{1})},
		"schema version":    {keyVersion, []byte{9}},
	}
	for name, tc := range cases {
		t.Run(name+"/memory", func(t *testing.T) {
			m := newMemBackend()
			s, err := open(m, defaultOptions(nil), true)
			require.NoError(t, err)
			rawPut(t, s, bucketMeta, tc.key, tc.val)
			_, err = open(m, defaultOptions(nil), false)
			require.ErrorIs(t, err, ErrCorrupt)
		})
		t.Run(name+"/file", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.db")
			s, err := OpenFile(path)
			require.NoError(t, err)
			rawPut(t, s, bucketMeta, tc.key, tc.val)
			require.NoError(t, s.Close())
			_, err = OpenFile(path)
			require.ErrorIs(t, err, ErrCorrupt)
		})
	}
}

func TestFileGarbageRefused(t *testing.T) {
	t.Parallel()
	for name, data := range map[string][]byte{
		"zeros":     make([]byte, 4*4096),
		"text":      []byte("this is not a bbolt file"),
		"truncated": nil, // filled below from a real file
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.db")
			if data == nil {
				s, err := OpenFile(path)
				require.NoError(t, err)
				require.NoError(t, s.PutResident(testCred("example.com", []byte("u"))))
				require.NoError(t, s.Close())
				full, err := os.ReadFile(path)
				require.NoError(t, err)
				data = full[:4096+100]
			}
			require.NoError(t, os.WriteFile(path, data, 0o600))
			_, err := OpenFile(path)
			require.Error(t, err)
		})
	}
}

// TestFileDamagedRecord damages a credential record inside a real state file: every read must
// answer ErrCorrupt (the record's checksum, or its ID against its key), never a panic or a
// silently different credential.
func TestFileDamagedRecord(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.db")
	s, err := OpenFile(path)
	require.NoError(t, err)
	victim := testCred("example.com", []byte("victim"))
	require.NoError(t, s.PutResident(victim))
	require.NoError(t, s.PutResident(testCred("example.com", []byte("bystander"))))
	require.NoError(t, s.Close())
	orig, err := os.ReadFile(path)
	require.NoError(t, err)
	enc, err := encodeCredential(victim)
	require.NoError(t, err)
	at := bytes.Index(orig, enc)
	require.GreaterOrEqual(t, at, 0, "record stored as encoded")

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 200 {
		data := bytes.Clone(orig)
		if i == 0 {
			data[at] = 0xFF // unknown format byte
		} else {
			for range 1 + rng.IntN(3) {
				data[at+rng.IntN(len(enc))] ^= byte(1 + rng.IntN(255))
			}
		}
		p := filepath.Join(dir, "damaged.db")
		require.NoError(t, os.WriteFile(p, data, 0o600))
		d, err := OpenFile(p)
		require.NoError(t, err)
		_, err = d.ResidentByID(victim.ID)
		require.ErrorIs(t, err, ErrCorrupt, i)
		_, err = d.Resident("example.com")
		require.ErrorIs(t, err, ErrCorrupt, i)
		require.NoError(t, d.DeleteResident(victim.ID), "a damaged record can be removed")
		rest, err := d.Resident("example.com")
		require.NoError(t, err)
		require.Len(t, rest, 1)
		require.NoError(t, d.Close())
	}
}
