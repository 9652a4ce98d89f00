package authenticator

import (
	"context"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/stretchr/testify/require"
)

// coreFuzzKey is one key per fuzz target with a credential made before fuzzing; after every
// input the key must still answer getInfo and that credential must still sign.
type coreFuzzKey struct {
	*testKey
	known *coreCred
}

func newCoreFuzzKey(f *testing.F) *coreFuzzKey {
	k := newTestKey(f, "default")
	return &coreFuzzKey{testKey: k, known: k.coreMake(makeCredReq("known.example", []byte("known"), true))}
}

func (k *coreFuzzKey) checkIntact(t *testing.T) {
	t.Helper()
	resp := k.HandleCBOR(context.Background(), []byte{byte(ctap.CmdGetInfo)}, func(byte) {})
	require.Equal(t, byte(ctap.StatusOK), resp[0])
	req := gaReq("known.example", k.known.id)
	body, err := ctap.Marshal(req)
	require.NoError(t, err)
	out := k.HandleCBOR(context.Background(), append([]byte{byte(ctap.CmdGetAssertion)}, body...), func(byte) {})
	require.Equal(t, byte(ctap.StatusOK), out[0])
	var ga ctap.GetAssertionResponse
	require.NoError(t, ctap.Unmarshal(out[1:], &ga))
	coreCheckAssertion(t, &ga, "known.example", req.ClientDataHash, &k.known.pub)
}

func (k *coreFuzzKey) fuzzCBOR(t *testing.T, cmd ctap.Command, data []byte) {
	resp := k.HandleCBOR(context.Background(), append([]byte{byte(cmd)}, data...), func(byte) {})
	require.NotEmpty(t, resp)
	if resp[0] != byte(ctap.StatusOK) {
		require.Len(t, resp, 1, "an error is the status byte alone")
	}
	k.checkIntact(t)
}

func coreSeed(f *testing.F, v any) {
	b, err := ctap.Marshal(v)
	require.NoError(f, err)
	f.Add(b)
}

func FuzzMakeCredential(f *testing.F) {
	k := newCoreFuzzKey(f)
	coreSeed(f, makeCredReq("a.example", []byte("u"), false))
	coreSeed(f, makeCredReq("a.example", []byte("u"), true))
	r := makeCredReq("a.example", []byte("u"), true)
	r.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true), CredProtect: ctap.Uint(2), CredBlob: []byte("x"), LargeBlobKey: ctap.Bool(true)}
	r.ExcludeList = []ctap.CredentialDescriptor{{ID: k.known.id, Type: "public-key"}}
	coreSeed(f, r)
	f.Add([]byte{0xa0})
	f.Add([]byte{0xff})
	coreSeed(f, map[any]any{1: []any{1}, 2: map[any]any{"id": "a.example"}, 3: map[any]any{"id": []any{1}},
		4: []any{map[any]any{"alg": -7, "type": "public-key"}}}) // arrays where byte strings belong
	f.Fuzz(func(t *testing.T, data []byte) { k.fuzzCBOR(t, ctap.CmdMakeCredential, data) })
}

func FuzzGetAssertion(f *testing.F) {
	k := newCoreFuzzKey(f)
	coreSeed(f, gaReq("known.example", k.known.id))
	coreSeed(f, gaReq("known.example"))
	r := gaReq("known.example", []byte("foreign"), k.known.id)
	r.Extensions = &ctap.GetAssertionExtensions{CredBlob: ctap.Bool(true), LargeBlobKey: ctap.Bool(true),
		HMACSecret: &ctap.HMACSecretInput{KeyAgreement: []byte{0xa0}, SaltEnc: make([]byte, 32), SaltAuth: make([]byte, 16)}}
	r.Options = &ctap.Options{UP: ctap.Bool(false)}
	coreSeed(f, r)
	f.Add([]byte{0xa1, 0x01, 0x60})
	coseArray := map[any]any{1: 2, 3: -25, -1: 1, -2: arrayOf(make([]byte, 32)), -3: make([]byte, 32)}
	coreSeed(f, map[any]any{1: "known.example", 2: []any{1}, 3: []any{map[any]any{"id": []any{1}, "type": "public-key"}},
		4: map[any]any{"hmac-secret": map[any]any{1: coseArray, 2: []any{1}, 3: nil}}}) // arrays and null where byte strings belong
	f.Fuzz(func(t *testing.T, data []byte) {
		k.fuzzCBOR(t, ctap.CmdGetAssertion, data)
		k.fuzzCBOR(t, ctap.CmdGetNextAssertion, nil)
	})
}

func FuzzU2F(f *testing.F) {
	k := newTestKey(f, "default")
	app := u2fParam("https://example.com")
	kh, _ := k.coreU2FRegister(app)
	f.Add(coreAPDU(f, u2f.VersionCommand()))
	f.Add(coreAPDU(f, u2f.RegisterRequest{Application: app}.Command()))
	auth, err := u2f.AuthenticateRequest{Control: u2f.ControlEnforceUserPresence, Application: app, KeyHandle: kh}.Command()
	require.NoError(f, err)
	f.Add(coreAPDU(f, auth))
	f.Add([]byte{0, 2, 7, 0})
	f.Fuzz(func(t *testing.T, apdu []byte) {
		out := k.HandleMSG(context.Background(), apdu)
		data, sw, err := u2f.ParseResponse(out)
		require.NoError(t, err)
		if sw != u2f.SWNoError {
			require.Empty(t, data, "an error carries no data")
		}
		// The registered key handle still works.
		c, err := u2f.AuthenticateRequest{Control: u2f.ControlCheckOnly, Application: app, KeyHandle: kh}.Command()
		require.NoError(t, err)
		b, err := c.Encode()
		require.NoError(t, err)
		_, sw, err = u2f.ParseResponse(k.HandleMSG(context.Background(), b))
		require.NoError(t, err)
		require.Equal(t, u2f.SWConditionsNotSatisfied, sw)
	})
}
