package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

func TestGetInfoDefault(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	gi := k.info()
	require.Equal(t, []string{"U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1"}, gi.Versions)
	require.Equal(t, k.p.AAGUID[:], gi.AAGUID)
	require.Equal(t, map[string]bool{
		"rk": true, "up": true, "plat": false, "clientPin": false, "uv": false, "bioEnroll": false,
		"userVerificationMgmtPreview": false, "credentialMgmtPreview": true, "pinUvAuthToken": true,
		"credMgmt": true, "largeBlobs": true, "authnrCfg": true, "alwaysUv": false, "setMinPINLength": true,
		"ep": false, "makeCredUvNotRqd": true,
	}, gi.Options)
	require.Equal(t, []uint64{2, 1}, gi.PinUvAuthProtocols)
	require.Equal(t, []string{"usb"}, gi.Transports)
	require.Equal(t, []ctap.AlgorithmParam{{Alg: -7, Type: "public-key"}, {Alg: -8, Type: "public-key"}}, gi.Algorithms)
	require.Equal(t, uint64(1200), gi.MaxMsgSize)
	require.Equal(t, uint64(128), gi.MaxCredentialIDLength)
	require.Equal(t, uint64(8), gi.MaxCredentialCountInList)
	require.Equal(t, uint64(32), gi.MaxCredBlobLength)
	require.Equal(t, uint64(4), gi.MinPINLength)
	require.NotNil(t, gi.ForcePINChange)
	require.False(t, *gi.ForcePINChange)
	require.Equal(t, uint64(25), *gi.RemainingDiscoverableCredentials)

	// Live state shows.
	k.coreMake(makeCredReq("example.com", []byte("alice"), true))
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	require.NoError(t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{1}}))
	gi = k.info()
	require.True(t, gi.Options["clientPin"])
	require.True(t, gi.Options["uv"])
	require.True(t, gi.Options["bioEnroll"])
	require.Equal(t, uint64(24), *gi.RemainingDiscoverableCredentials)
}

func TestGetInfoCTAP20(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "ctap20")
	st, body := k.call(ctap.CmdGetInfo, nil)
	require.Equal(t, ctap.StatusOK, st)
	var raw map[int]any
	require.NoError(t, ctap.Unmarshal(body, &raw))
	for key := range raw {
		require.LessOrEqual(t, key, 8, "CTAP 2.0 getInfo has no key %d", key)
	}
	gi := k.info()
	require.Equal(t, map[string]bool{"rk": true, "up": true, "plat": false, "clientPin": false}, gi.Options)
	require.Equal(t, []uint64{1}, gi.PinUvAuthProtocols)
	require.False(t, gi.HasVersion(ctap.VersionFIDO21))
}

func TestGetInfoU2FOnly(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "u2f")
	st, _ := k.call(ctap.CmdGetInfo, nil)
	require.Equal(t, ctap.ErrInvalidCommand, st)
}
