package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecodeRecord feeds arbitrary stored values to every record decoder. Invariants: no
// panic; an error is always ErrCorrupt; a value that decodes satisfies the write-side
// validation and survives an encode/decode round trip unchanged.
func FuzzDecodeRecord(f *testing.F) {
	cred, err := encodeCredential(testCred("example.com", []byte("seed")))
	require.NoError(f, err)
	pin, err := encodePIN(PIN{Set: true, Hash: make([]byte, PINHashLen), CodePoints: 4, Retries: 8})
	require.NoError(f, err)
	set, err := encodeSettings(Settings{AlwaysUV: true, MinPINLength: 6, MinPINLengthRPIDs: []string{"a"}})
	require.NoError(f, err)
	fp, err := encodeFinger(fingerRecord{TemplateID: []byte{1}, FriendlyName: "thumb", Seq: 3})
	require.NoError(f, err)
	for _, seed := range [][]byte{cred, pin, set, fp, encodeUint(42), encodeRaw([]byte("blob")), {}, {formatV1}, frame([]byte{0xA1})} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(err error) bool {
			if err != nil {
				require.ErrorIs(t, err, ErrCorrupt)
				return false
			}
			return true
		}
		if c, err := decodeCredential(data); check(err) {
			require.NoError(t, validateCredential(c))
			enc, err := encodeCredential(c)
			require.NoError(t, err)
			back, err := decodeCredential(enc)
			require.NoError(t, err)
			require.Equal(t, c, back)
		}
		if p, err := decodePIN(data); check(err) {
			require.NoError(t, validatePIN(p))
			enc, err := encodePIN(p)
			require.NoError(t, err)
			back, err := decodePIN(enc)
			require.NoError(t, err)
			require.Equal(t, p, back)
		}
		if s, err := decodeSettings(data); check(err) {
			require.NoError(t, validateSettings(s))
			enc, err := encodeSettings(s)
			require.NoError(t, err)
			back, err := decodeSettings(enc)
			require.NoError(t, err)
			require.Equal(t, s, back)
		}
		if r, err := decodeFinger(data); check(err) {
			enc, err := encodeFinger(r)
			require.NoError(t, err)
			back, err := decodeFinger(enc)
			require.NoError(t, err)
			require.Equal(t, r, back)
		}
		if v, err := decodeUint("fuzz", data); check(err) && data != nil {
			require.Equal(t, data, encodeUint(v), "a counter has exactly one encoding")
		}
		if b, err := decodeRaw("fuzz", data); check(err) {
			require.Equal(t, data, encodeRaw(b))
			if len(b) > 0 {
				b[0] ^= 0xFF // the result is a copy, not a view of the stored bytes
				require.False(t, bytes.Equal(b, data[1:1+len(b)]))
			}
		}
	})
}

// FuzzOpenStateFile opens mutated state files. Invariants: no crash (no fault, no panic, no hang);
// a refusal is one of the file errors (ErrNotState, ErrDamaged, ErrCorrupt, ErrVersion); a file
// that opens can be read and written, with only the store's own errors.
func FuzzOpenStateFile(f *testing.F) {
	small := realState(f, 3)
	f.Add(small)
	f.Add(small[:len(small)/2])
	f.Add(realState(f, 30))
	f.Add([]byte{})
	dir := f.TempDir()
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, fmt.Sprintf("fuzz%d.state", n.Add(1)))
		require.NoError(t, os.WriteFile(path, data, 0o600))
		defer os.Remove(path)
		s, err := OpenFile(path, WithLockTimeout(0), func(o *options) { o.noSync = true })
		if err != nil {
			requireFileError(t, err)
			return
		}
		exercise(t, s)
		_ = s.Close()
	})
}
