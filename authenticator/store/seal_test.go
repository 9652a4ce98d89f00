package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// secretsOf fills a state with recognisable secrets and returns them with the master secret.
func secretsOf(t *testing.T, s Store) [][]byte {
	t.Helper()
	c := testCred("bank.example", []byte("alice"))
	c.PrivateKey = bytes.Repeat([]byte("PRIVKEY!"), 4)
	c.CredRandomUV = bytes.Repeat([]byte("RANDUV!!"), 4)
	c.CredRandomNoUV = bytes.Repeat([]byte("RANDNOUV"), 4)
	c.LargeBlobKey = bytes.Repeat([]byte("LBLOBKEY"), 4)
	require.NoError(t, s.PutResident(c))
	pin := bytes.Repeat([]byte("PINHASH!"), 2)
	require.NoError(t, s.PutPIN(PIN{Set: true, Hash: pin, CodePoints: 6, Retries: 8}))
	att := bytes.Repeat([]byte("ATTESTATION-KEY!"), 2)
	require.NoError(t, s.PutBlob("attestation/default", att))
	master, err := s.Secrets()
	require.NoError(t, err)
	return [][]byte{c.PrivateKey, c.CredRandomUV, c.CredRandomNoUV, c.LargeBlobKey, pin, att, master}
}

func TestSealedFileHoldsNoSecret(t *testing.T) {
	t.Parallel()
	for _, sealed := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "key.state")
		var opts []Option
		if sealed {
			opts = append(opts, WithStateKey(testStateKey))
		}
		s, err := OpenFile(path, opts...)
		require.NoError(t, err)
		secrets := secretsOf(t, s)
		require.NoError(t, s.Close())
		raw, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, secret := range secrets {
			// The plain file holds every one of them, which is what shows the search works.
			require.Equal(t, !sealed, bytes.Contains(raw, secret), "sealed=%t: %q", sealed, secret)
		}
		if sealed {
			require.True(t, bytes.Contains(raw, []byte("bank.example")), "what is not secret stays readable")
		}
	}
}

func TestSealedFileNeedsItsKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.state")
	s, err := OpenFile(path, WithStateKey(testStateKey))
	require.NoError(t, err)
	require.True(t, Sealed(s))
	secrets := secretsOf(t, s)
	require.NoError(t, s.Close())

	_, err = OpenFile(path)
	require.ErrorIs(t, err, ErrSealed)
	require.ErrorContains(t, err, "--state-key-file")
	other, err := NewStateKey(bytes.Repeat([]byte{0x42}, 32))
	require.NoError(t, err)
	_, err = OpenFile(path, WithStateKey(other))
	require.ErrorIs(t, err, ErrWrongKey)

	s, err = OpenFile(path, WithStateKey(testStateKey))
	require.NoError(t, err)
	defer s.Close()
	cs, err := s.Resident("bank.example")
	require.NoError(t, err)
	require.Len(t, cs, 1)
	require.Equal(t, secrets[0], cs[0].PrivateKey)
	master, err := s.Secrets()
	require.NoError(t, err)
	require.Equal(t, secrets[6], master)

	plain := filepath.Join(t.TempDir(), "plain.state")
	p, err := OpenFile(plain)
	require.NoError(t, err)
	require.False(t, Sealed(p))
	require.NoError(t, p.Close())
	_, err = OpenFile(plain, WithStateKey(testStateKey))
	require.ErrorIs(t, err, ErrNotSealed)
	require.ErrorContains(t, err, "fidolab key seal")
}

// A sealed value is bound to its place: moved to another key it does not open, and reading it is
// an error, never the other value or an absent one.
func TestSealedValueBoundToItsPlace(t *testing.T) {
	t.Parallel()
	m := newMemBackend()
	s, err := open(m, options{counterReserve: 1, key: testStateKey}, true)
	require.NoError(t, err)
	require.NoError(t, s.PutPIN(PIN{Set: true, Hash: make([]byte, PINHashLen), Retries: 3}))
	require.NoError(t, s.PutSettings(Settings{MinPINLength: 8}))
	m.data[string(bucketMeta)][string(keySettings)] = m.data[string(bucketMeta)][string(keyPIN)]
	_, err = s.Settings()
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "sealed value does not open")
	p, err := s.PIN()
	require.NoError(t, err)
	require.Equal(t, 3, p.Retries)
}

func TestSealFileConvertsAPlainState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.state")
	s, err := OpenFile(path)
	require.NoError(t, err)
	secrets := secretsOf(t, s)
	for range 5 {
		_, err := s.NextSignCount()
		require.NoError(t, err)
	}
	fp := Fingerprint{TemplateID: []byte{1, 2}, FriendlyName: "left thumb"}
	require.NoError(t, s.PutFingerprint(fp))
	settings := Settings{AlwaysUV: true, MinPINLength: 7, MinPINLengthRPIDs: []string{"bank.example"}}
	require.NoError(t, s.PutSettings(settings))
	blobs := append(bytes.Clone(InitialLargeBlobs), 1, 2, 3)
	require.NoError(t, s.PutLargeBlobs(blobs))
	require.NoError(t, s.Close())

	require.NoError(t, SealFile(path, testStateKey))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	for _, secret := range secrets {
		require.False(t, bytes.Contains(raw, secret), "%q", secret)
	}
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	s, err = OpenFile(path, WithStateKey(testStateKey))
	require.NoError(t, err)
	master, err := s.Secrets()
	require.NoError(t, err)
	require.Equal(t, secrets[6], master, "the master secret moved over: credential IDs still open")
	cs, err := s.Resident("bank.example")
	require.NoError(t, err, "credentials and their index moved over")
	require.Len(t, cs, 1)
	require.Equal(t, secrets[0], cs[0].PrivateKey)
	require.NoError(t, s.PutBlob("after", []byte("x")), "the sealed copy takes writes")
	fps, err := s.Fingerprints()
	require.NoError(t, err)
	require.Equal(t, []Fingerprint{fp}, fps)
	st, err := s.Settings()
	require.NoError(t, err)
	require.Equal(t, settings, st)
	lb, err := s.LargeBlobs()
	require.NoError(t, err)
	require.Equal(t, blobs, lb)
	pin, err := s.PIN()
	require.NoError(t, err)
	require.Equal(t, secrets[4], pin.Hash)
	n, err := s.NextSignCount()
	require.NoError(t, err)
	require.Equal(t, uint32(6), n, "the signature counter continues")
	require.NoError(t, s.Close())
	require.ErrorContains(t, SealFile(path, testStateKey), "sealed", "sealing twice is refused")
}

func TestLoadStateKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	good := write("good", bytes.Repeat([]byte{7}, 32), 0o600)
	k1, err := LoadStateKey(good)
	require.NoError(t, err)
	k2, err := LoadStateKey(write("readonly", bytes.Repeat([]byte{7}, 32), 0o400))
	require.NoError(t, err)
	require.Equal(t, k1.prk, k2.prk, "the same bytes are the same key")
	require.NotContains(t, k1.String(), "7")

	_, err = LoadStateKey(write("short", []byte("hunter2\n"), 0o600))
	require.ErrorContains(t, err, "at least 32 random bytes")
	_, err = LoadStateKey(write("open", bytes.Repeat([]byte{7}, 32), 0o644))
	require.ErrorIs(t, err, ErrPermissions)
	_, err = LoadStateKey(write("huge", make([]byte, 70<<10), 0o600))
	require.ErrorContains(t, err, "larger than")
	_, err = LoadStateKey(dir)
	require.ErrorContains(t, err, "not a regular file")
	_, err = LoadStateKey(filepath.Join(dir, "missing"))
	require.Error(t, err)
}
