package authenticator

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/stretchr/testify/require"
)

// TestCredentialIDRoundTrip seals and opens IDs of every size class: ES256 without and with a
// credBlob (held inside the credential), the largest credBlob, and RSA, whose secret and ID do
// not fit there. What comes out must be exactly what went in, and the ID presented for another
// RP, or edited, must not open.
func TestCredentialIDRoundTrip(t *testing.T) {
	k := newTestKey(t, "default")
	rpIDHash := sha256.Sum256([]byte("example.com"))
	other := sha256.Sum256([]byte("example.org"))
	for _, tc := range []struct {
		name   string
		alg    cose.Algorithm
		secret int
		blob   int
	}{
		{"ES256", cose.AlgES256, 32, 0},
		{"ES256 credBlob 1", cose.AlgES256, 32, 1},
		{"ES256 credBlob 32", cose.AlgES256, 32, 32},
		{"ES256 credBlob 64", cose.AlgES256, 32, 64},
		{"RS256", cose.AlgRS256, secretLen(int(cose.AlgRS256)), 0},
	} {
		secret := bytes.Repeat([]byte{0x5a}, tc.secret)
		blob := bytes.Repeat([]byte{0xb1}, tc.blob)
		meta := algMeta(tc.alg) | metaHMACSecret | 2 // credProtect 2
		id, err := k.sealCredentialID(rpIDHash[:], meta, secret, blob)
		require.NoError(t, err, tc.name)
		c, ok, err := k.openCredentialID(id, rpIDHash[:])
		require.NoError(t, err, tc.name)
		require.True(t, ok, tc.name)
		require.Equal(t, id, c.id, tc.name)
		require.Equal(t, secret, c.secret, tc.name)
		require.Equal(t, int(tc.alg), c.alg, tc.name)
		require.Equal(t, uint8(2), c.credProtect, tc.name)
		require.True(t, c.hmacSecret, tc.name)
		if tc.blob == 0 {
			require.Empty(t, c.blob, tc.name)
		} else {
			require.Equal(t, blob, c.blob, tc.name)
		}
		id[len(id)-1] ^= 1 // the credential keeps its own copy of the ID
		require.NotEqual(t, id, c.id, tc.name)
		c.wipe()
		require.Equal(t, make([]byte, tc.secret), c.secret, "%s: wipe clears the secret", tc.name)

		id[len(id)-1] ^= 1
		_, ok, err = k.openCredentialID(id, other[:])
		require.NoError(t, err)
		require.False(t, ok, "%s: opened for another RP", tc.name)
		id[20] ^= 0x80
		_, ok, err = k.openCredentialID(id, rpIDHash[:])
		require.NoError(t, err)
		require.False(t, ok, "%s: an edited ID opened", tc.name)
	}
}

// TestOpenCredentialIDAllocatesOnce: opening an ES256 ID (every getAssertion with an
// allowList) is one allocation, the credential holding its ID, secret and AAD.
func TestOpenCredentialIDAllocatesOnce(t *testing.T) {
	k := newTestKey(t, "default")
	rpIDHash := sha256.Sum256([]byte("example.com"))
	id, err := k.sealCredentialID(rpIDHash[:], 0, bytes.Repeat([]byte{7}, 32), nil)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(200, func() {
		if _, ok, err := k.openCredentialID(id, rpIDHash[:]); !ok || err != nil {
			t.Fatal("did not open", err)
		}
	})
	require.LessOrEqual(t, allocs, 1.0)
}
