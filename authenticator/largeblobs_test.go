package authenticator

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// lbArray builds a serialized large-blob array of exactly n bytes: filler then its hash.
func lbArray(n int, fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, n-largeBlobHashLen)
	b[0] = 0x81 // looks like a CBOR array; the key does not care
	h := sha256.Sum256(b)
	return append(b, h[:largeBlobHashLen]...)
}

// lbAuth is pinUvAuthParam for a set fragment.
func lbAuth(t testing.TB, token []byte, offset uint64, frag []byte) []byte {
	msg := bytes.Repeat([]byte{0xff}, 32)
	msg = append(msg, 0x0c, 0x00)
	msg = binary.LittleEndian.AppendUint32(msg, uint32(offset))
	h := sha256.Sum256(frag)
	return authParam(t, 2, token, append(msg, h[:]...))
}

func (k *testKey) lbSet(token []byte, offset uint64, frag []byte, length *uint64) ctap.Status {
	k.t.Helper()
	req := &ctap.LargeBlobsRequest{Set: frag, Offset: ctap.Uint(offset), Length: length}
	if token != nil {
		req.PinUvAuthProtocol = ctap.Uint(2)
		req.PinUvAuthParam = lbAuth(k.t, token, offset, frag)
	}
	st, _ := k.call(ctap.CmdLargeBlobs, req)
	return st
}

// lbWrite writes blob in fragments of size frag and returns the status of each.
func (k *testKey) lbWrite(token, blob []byte, frag int) []ctap.Status {
	k.t.Helper()
	var out []ctap.Status
	for off := 0; off < len(blob); off += frag {
		var length *uint64
		if off == 0 {
			length = ctap.Uint(uint64(len(blob)))
		}
		out = append(out, k.lbSet(token, uint64(off), blob[off:min(off+frag, len(blob))], length))
	}
	return out
}

func (k *testKey) lbGet(offset, n uint64) (ctap.Status, []byte) {
	k.t.Helper()
	st, body := k.call(ctap.CmdLargeBlobs, &ctap.LargeBlobsRequest{Get: ctap.Uint(n), Offset: ctap.Uint(offset)})
	if st != ctap.StatusOK {
		return st, nil
	}
	var resp ctap.LargeBlobsResponse
	require.NoError(k.t, ctap.Unmarshal(body, &resp))
	return st, resp.Config
}

// lbReadAll reads the whole array in fragments of n bytes.
func (k *testKey) lbReadAll(n uint64) []byte {
	k.t.Helper()
	var out []byte
	for {
		st, chunk := k.lbGet(uint64(len(out)), n)
		require.Equal(k.t, ctap.StatusOK, st)
		out = append(out, chunk...)
		if uint64(len(chunk)) < n {
			return out
		}
	}
}

func allOK(t testing.TB, sts []ctap.Status) {
	t.Helper()
	for i, st := range sts {
		require.Equal(t, ctap.StatusOK, st, "fragment %d", i)
	}
}

func TestLargeBlobsInitialAndRoundTrip(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, store.InitialLargeBlobs, k.lbReadAll(5))

	blob := lbArray(k.Persona().MaxSerializedLargeBlobArray, 0x42)
	// The first fragments only: nothing is committed yet.
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, blob[:300], ctap.Uint(uint64(len(blob)))))
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 300, blob[300:600], nil))
	require.Equal(t, store.InitialLargeBlobs, k.lbReadAll(100), "a partial write is invisible")

	allOK(t, k.lbWrite(nil, blob, 300))
	require.Equal(t, blob, k.lbReadAll(333))
	require.Equal(t, blob, k.lbReadAll(k.maxLargeBlobFragment()))
	stored, err := k.Store().LargeBlobs()
	require.NoError(t, err)
	require.Equal(t, blob, stored)

	// Reading at the very end gives an empty fragment; past it is an error.
	st, chunk := k.lbGet(uint64(len(blob)), 10)
	require.Equal(t, ctap.StatusOK, st)
	require.Empty(t, chunk)
	st, _ = k.lbGet(uint64(len(blob))+1, 10)
	require.Equal(t, ctap.ErrInvalidParameter, st)
}

func TestLargeBlobsIntegrityAndSequence(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	good := lbArray(400, 0x11)
	allOK(t, k.lbWrite(nil, good, 150))

	bad := lbArray(400, 0x22)
	bad[10] ^= 1
	sts := k.lbWrite(nil, bad, 150)
	require.Equal(t, []ctap.Status{ctap.StatusOK, ctap.StatusOK, ctap.ErrIntegrityFailure}, sts)
	require.Equal(t, good, k.lbReadAll(500), "previous content intact")
	require.Equal(t, ctap.ErrInvalidSeq, k.lbSet(nil, 400, []byte{1}, nil), "a failed write is over")

	next := lbArray(400, 0x33)
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, next[:100], ctap.Uint(400)))
	require.Equal(t, ctap.ErrInvalidSeq, k.lbSet(nil, 150, next[150:250], nil), "skipping ahead")
	require.Equal(t, ctap.ErrInvalidSeq, k.lbSet(nil, 50, next[50:100], nil), "going back")
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 100, next[100:300], nil), "the write survives out-of-order attempts")
	require.Equal(t, ctap.ErrInvalidParameter, k.lbSet(nil, 300, append(next[300:], 0), nil), "running past length")
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 300, next[300:], nil))
	require.Equal(t, next, k.lbReadAll(1000))

	// A new offset-0 write restarts from scratch.
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, good[:200], ctap.Uint(400)))
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, good[:100], ctap.Uint(400)))
	require.Equal(t, ctap.ErrInvalidSeq, k.lbSet(nil, 200, good[200:], nil))
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 100, good[100:], nil))
	require.Equal(t, good, k.lbReadAll(1000))

	// A power cycle drops a pending write.
	require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, next[:200], ctap.Uint(400)))
	require.NoError(t, k.PowerCycle())
	require.Equal(t, ctap.ErrInvalidSeq, k.lbSet(nil, 200, next[200:], nil))
}

func TestLargeBlobsPermission(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	blob := lbArray(300, 0x55)
	// mgmtToken sets a PIN: from now on writes need lbw.
	noLBW := k.mgmtToken(ctap.PermCredentialManagement, "")
	require.Equal(t, ctap.ErrPUATRequired, k.lbSet(nil, 0, blob, ctap.Uint(300)))
	require.Equal(t, ctap.ErrPINAuthInvalid, k.lbSet(noLBW, 0, blob, ctap.Uint(300)))

	tok := k.mgmtToken(ctap.PermLargeBlobWrite, "")
	req := &ctap.LargeBlobsRequest{Set: blob, Offset: ctap.Uint(0), Length: ctap.Uint(300), PinUvAuthParam: lbAuth(t, tok, 0, blob)}
	st, _ := k.call(ctap.CmdLargeBlobs, req)
	require.Equal(t, ctap.ErrMissingParameter, st, "pinUvAuthProtocol missing")
	req.PinUvAuthProtocol, req.PinUvAuthParam = ctap.Uint(2), lbAuth(t, tok, 1, blob)
	st, _ = k.call(ctap.CmdLargeBlobs, req)
	require.Equal(t, ctap.ErrPINAuthInvalid, st, "MAC over another offset")
	req.PinUvAuthParam = lbAuth(t, tok, 0, blob[1:])
	st, _ = k.call(ctap.CmdLargeBlobs, req)
	require.Equal(t, ctap.ErrPINAuthInvalid, st, "MAC over another fragment")
	require.Equal(t, store.InitialLargeBlobs, k.lbReadAll(100))

	allOK(t, k.lbWrite(tok, blob, 120))
	require.Equal(t, blob, k.lbReadAll(100), "reading needs no token")
}

// Without a PIN, alwaysUv or an enrolled fingerprint still make a write need a token.
func TestLargeBlobsProtectedWithoutPIN(t *testing.T) {
	t.Parallel()
	for name, protect := range map[string]func(store.Store) error{
		"alwaysUv":    func(s store.Store) error { return s.PutSettings(store.Settings{AlwaysUV: true}) },
		"fingerprint": func(s store.Store) error { return s.PutFingerprint(store.Fingerprint{TemplateID: []byte{1}}) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			require.Equal(t, ctap.StatusOK, k.lbSet(nil, 0, lbArray(100, 1)[:50], ctap.Uint(100)), "open before")
			require.NoError(t, protect(k.Store()))
			require.Equal(t, ctap.ErrPUATRequired, k.lbSet(nil, 0, lbArray(100, 1), ctap.Uint(100)))
		})
	}
}

func TestLargeBlobsErrors(t *testing.T) {
	t.Parallel()
	blob := lbArray(100, 0x77)
	tests := []struct {
		name string
		req  any
		want ctap.Status
	}{
		{"malformed CBOR", []byte{0xa1}, ctap.ErrInvalidCBOR},
		{"empty request", nil, ctap.ErrMissingParameter},
		{"offset of the wrong type", map[int]any{1: 10, 3: "zero"}, ctap.ErrCBORUnexpectedType},
		{"offset missing", map[int]any{1: 10}, ctap.ErrInvalidParameter},
		{"neither get nor set", map[int]any{3: 0}, ctap.ErrInvalidParameter},
		{"both get and set", map[int]any{1: 10, 2: blob, 3: 0, 4: 100}, ctap.ErrInvalidParameter},
		{"get with length", map[int]any{1: 10, 3: 0, 4: 10}, ctap.ErrInvalidParameter},
		{"get with pinUvAuthParam", map[int]any{1: 10, 3: 0, 5: []byte{1}}, ctap.ErrInvalidParameter},
		{"get with pinUvAuthProtocol", map[int]any{1: 10, 3: 0, 6: 2}, ctap.ErrInvalidParameter},
		{"get beyond maxFragmentLength", map[int]any{1: 1200 - 63, 3: 0}, ctap.ErrInvalidLength},
		{"get at maxFragmentLength", map[int]any{1: 1200 - 64, 3: 0}, ctap.StatusOK},
		{"get past the end", map[int]any{1: 1, 3: 18}, ctap.ErrInvalidParameter},
		{"get at a huge offset", map[int]any{1: 1, 3: uint64(math.MaxUint64)}, ctap.ErrInvalidParameter},
		{"set beyond maxFragmentLength", map[int]any{2: make([]byte, 1200-63), 3: 0, 4: 1000}, ctap.ErrInvalidLength},
		{"set at offset 0 without length", map[int]any{2: blob, 3: 0}, ctap.ErrInvalidParameter},
		{"set length over maxSerializedLargeBlobArray", map[int]any{2: blob, 3: 0, 4: 1025}, ctap.ErrLargeBlobStorageFull},
		{"set huge length", map[int]any{2: blob, 3: 0, 4: uint64(math.MaxUint64)}, ctap.ErrLargeBlobStorageFull},
		{"set length below 17", map[int]any{2: blob[:16], 3: 0, 4: 16}, ctap.ErrInvalidParameter},
		{"set length at non-zero offset", map[int]any{2: blob, 3: 5, 4: 100}, ctap.ErrInvalidParameter},
		{"set at non-zero offset without a write", map[int]any{2: blob, 3: 5}, ctap.ErrInvalidSeq},
		{"set at a huge offset", map[int]any{2: blob, 3: uint64(math.MaxUint64)}, ctap.ErrInvalidSeq},
		{"set fragment longer than length", map[int]any{2: blob, 3: 0, 4: 99}, ctap.ErrInvalidParameter},
		{"empty first fragment", map[int]any{2: []byte{}, 3: 0, 4: 17}, ctap.StatusOK},
		{"set bad hash", map[int]any{2: append(append([]byte(nil), blob[:99]...), 0), 3: 0, 4: 100}, ctap.ErrIntegrityFailure},
		{"set good", map[int]any{2: blob, 3: 0, 4: 100}, ctap.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			st, _ := k.call(ctap.CmdLargeBlobs, tc.req)
			require.Equal(t, tc.want, st)
			stored, err := k.Store().LargeBlobs()
			require.NoError(t, err)
			if tc.name == "set good" {
				require.Equal(t, blob, stored)
			} else {
				require.Equal(t, store.InitialLargeBlobs, stored)
			}
		})
	}
}

func TestLargeBlobsNotOffered(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", func(p *persona.Persona) { p.LargeBlobs = false })
	st, _ := k.lbGet(0, 10)
	require.Equal(t, ctap.ErrInvalidCommand, st)
}
