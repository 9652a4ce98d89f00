package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// arrayOf is b as a CBOR array of small integers: the shape a lax decoder mistakes for a byte
// string.
func arrayOf(b []byte) []any {
	a := make([]any, len(b))
	for i, x := range b {
		a[i] = int(x)
	}
	return a
}

// TestWrongTypeWhereBytesBelong sends whole commands to the key with an array in place of a byte
// string (issue 9 item 13): the key answers CTAP2_ERR_CBOR_UNEXPECTED_TYPE and does nothing else —
// no credential made, no PIN set, no retry spent.
func TestWrongTypeWhereBytesBelong(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	_, peer, _ := k.sharedSecret(2)
	coseMap := func(x, y any) map[any]any { return map[any]any{1: 2, 3: -25, -1: 1, -2: x, -3: y} }
	goodKey := coseMap(peer.X[:], peer.Y[:])

	mc := func(edit func(map[any]any)) map[any]any {
		m := map[any]any{
			1: make([]byte, 32), 2: map[any]any{"id": "example.com"},
			3: map[any]any{"id": []byte("alice"), "name": "alice"},
			4: []any{map[any]any{"alg": -7, "type": "public-key"}},
			7: map[any]any{"rk": true},
		}
		edit(m)
		return m
	}
	for _, tc := range []struct {
		name string
		cmd  ctap.Command
		req  map[any]any
	}{
		{"makeCredential clientDataHash [1]", ctap.CmdMakeCredential, mc(func(m map[any]any) { m[1] = []any{1} })},
		{"makeCredential clientDataHash as 32 integers", ctap.CmdMakeCredential, mc(func(m map[any]any) { m[1] = arrayOf(make([]byte, 32)) })},
		{"makeCredential user.id array", ctap.CmdMakeCredential, mc(func(m map[any]any) { m[3] = map[any]any{"id": []any{1, 2}} })},
		{"makeCredential pinUvAuthParam array", ctap.CmdMakeCredential, mc(func(m map[any]any) { m[8], m[9] = []any{1}, 2 })},
		{"makeCredential excludeList id array", ctap.CmdMakeCredential, mc(func(m map[any]any) {
			m[5] = []any{map[any]any{"id": []any{1}, "type": "public-key"}}
		})},
		{"getAssertion clientDataHash [1]", ctap.CmdGetAssertion, map[any]any{1: "example.com", 2: []any{1}}},
		{"getAssertion allowList id array", ctap.CmdGetAssertion, map[any]any{1: "example.com", 2: make([]byte, 32),
			3: []any{map[any]any{"id": []any{1}, "type": "public-key"}}}},
		{"getAssertion hmac-secret salt array", ctap.CmdGetAssertion, map[any]any{1: "example.com", 2: make([]byte, 32),
			4: map[any]any{"hmac-secret": map[any]any{1: goodKey, 2: arrayOf(make([]byte, 32)), 3: make([]byte, 32)}}}},
		{"getAssertion hmac-secret keyAgreement x array", ctap.CmdGetAssertion, map[any]any{1: "example.com", 2: make([]byte, 32),
			4: map[any]any{"hmac-secret": map[any]any{1: coseMap(arrayOf(peer.X[:]), peer.Y[:]), 2: make([]byte, 32), 3: make([]byte, 32)}}}},
		{"clientPIN setPIN keyAgreement x array", ctap.CmdClientPIN, map[any]any{1: 2, 2: 3,
			3: coseMap(arrayOf(peer.X[:]), peer.Y[:]), 4: make([]byte, 32), 5: make([]byte, 80)}},
		{"clientPIN setPIN keyAgreement y array", ctap.CmdClientPIN, map[any]any{1: 2, 2: 3,
			3: coseMap(peer.X[:], arrayOf(peer.Y[:])), 4: make([]byte, 32), 5: make([]byte, 80)}},
		{"clientPIN setPIN newPinEnc array", ctap.CmdClientPIN, map[any]any{1: 2, 2: 3, 3: goodKey, 4: make([]byte, 32), 5: arrayOf(make([]byte, 80))}},
		{"clientPIN setPIN pinUvAuthParam null", ctap.CmdClientPIN, map[any]any{1: 2, 2: 3, 3: goodKey, 4: nil, 5: make([]byte, 80)}},
		{"credentialManagement rpIDHash array", ctap.CmdCredentialManagement, map[any]any{1: 4,
			2: map[any]any{1: arrayOf(make([]byte, 32))}, 3: 2, 4: make([]byte, 32)}},
		{"largeBlobs set array", ctap.CmdLargeBlobs, map[any]any{2: []any{1, 2, 3}, 3: 0, 4: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := k.call(tc.cmd, tc.req)
			require.Equal(t, ctap.ErrCBORUnexpectedType, st)
		})
	}
	require.False(t, k.PINSet(), "no PIN was set")
	retries, err := k.PINRetries()
	require.NoError(t, err)
	require.Equal(t, maxPINRetries, retries)
	n, err := k.Store().CountResident()
	require.NoError(t, err)
	require.Zero(t, n, "no credential was made")
}
