package peers

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/transport/socket"
)

// These pin down, without libfido2, the key behaviours the libfido2 run depends on (see
// docs/compatibility.md, "Where clients and the spec disagree").

const flagED = 0x80

func dialLocal(t *testing.T, name string) (*LocalKey, *ctaphid.Client) {
	t.Helper()
	p, err := persona.Builtin(name)
	require.NoError(t, err)
	lk, err := ServeLocal(p)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, lk.Close()) })
	conn, err := socket.Dial("unix:" + lk.Socket)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return lk, ctaphid.NewClient(conn)
}

func makeReq(rk bool, ext *ctap.MakeCredentialExtensions) *ctap.MakeCredentialRequest {
	alg := int64(-7)
	cdh := make([]byte, 32)
	_, _ = rand.Read(cdh)
	return &ctap.MakeCredentialRequest{
		ClientDataHash:   cdh,
		RP:               &ctap.RPEntity{ID: "regress.fidolab.test"},
		User:             &ctap.UserEntity{ID: []byte{1, 2, 3, 4}, Name: "u"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: "public-key"}},
		Extensions:       ext,
		Options:          &ctap.Options{RK: ctap.Bool(rk)},
	}
}

func TestKeyIgnoresExtensionsItLacks(t *testing.T) {
	t.Parallel()
	prot := uint64(3)
	cases := []struct {
		persona string
		ext     *ctap.MakeCredentialExtensions
	}{
		{"no-hmac-secret", &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}},
		{"ctap20", &ctap.MakeCredentialExtensions{CredProtect: &prot}},
		{"ctap20", &ctap.MakeCredentialExtensions{LargeBlobKey: ctap.Bool(true)}},
	}
	for _, tc := range cases {
		_, hid := dialLocal(t, tc.persona)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := client.New(hid).MakeCredential(ctx, makeReq(true, tc.ext))
		cancel()
		require.NoError(t, err, tc.persona)
		require.Zero(t, res.AuthData.Flags&flagED, "%s: an unsupported extension must be ignored, not answered", tc.persona)
		require.Nil(t, res.AuthData.Extensions, tc.persona)
		require.Empty(t, res.Response.LargeBlobKey, tc.persona)
	}
}

func TestLargeBlobKeyComesBesideAuthData(t *testing.T) {
	t.Parallel()
	_, hid := dialLocal(t, "default")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := client.New(hid).MakeCredential(ctx, makeReq(true, &ctap.MakeCredentialExtensions{LargeBlobKey: ctap.Bool(true)}))
	require.NoError(t, err)
	require.Len(t, res.Response.LargeBlobKey, 32)
	require.Zero(t, res.AuthData.Flags&flagED, "largeBlobKey is not an authData extension output")
}

func TestCredentialManagementCommandCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		persona    string
		cmd        ctap.Command
		invalidCmd bool
	}{
		// libfido2 1.12 sends only 0x41; the default persona must answer it.
		{"default", ctap.CmdCredentialManagementPre, false},
		{"default", ctap.CmdCredentialManagement, false},
		{"no-hmac-secret", ctap.CmdCredentialManagement, false},
		{"no-hmac-secret", ctap.CmdCredentialManagementPre, false}, // the persona offers the preview too, as CTAP 2.1 hardware does
		{"ctap20", ctap.CmdCredentialManagementPre, true},
	}
	for _, tc := range cases {
		_, hid := dialLocal(t, tc.persona)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// getCredsMetadata without a pinUvAuthParam: a key with the command asks for one.
		resp, err := hid.CBOR(ctx, []byte{byte(tc.cmd), 0xa1, 0x01, 0x01})
		cancel()
		require.NoError(t, err)
		require.NotEmpty(t, resp)
		if tc.invalidCmd {
			require.Equal(t, byte(ctap.ErrInvalidCommand), resp[0], "%s %v", tc.persona, tc.cmd)
		} else {
			require.NotEqual(t, byte(ctap.ErrInvalidCommand), resp[0], "%s %v", tc.persona, tc.cmd)
		}
	}
}

func TestU2FOnlyKeyRefusesCBORPromptly(t *testing.T) {
	t.Parallel()
	_, hid := dialLocal(t, "u2f")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := hid.CBOR(ctx, []byte{byte(ctap.CmdGetInfo)})
	var he *ctaphid.HIDError
	require.True(t, errors.As(err, &he), "want CTAPHID_ERROR, got %v", err)
	require.Equal(t, ctaphid.ErrInvalidCmd, he.Code)
	require.Less(t, time.Since(start), 2*time.Second, "libfido2 treats a slow refusal like a dead key")
}
