package client_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

// realKey plugs an in-process authenticator with the named built-in persona into a client.
func realKey(t *testing.T, name string, opts ...client.Option) (*client.Client, *authenticator.Authenticator) {
	t.Helper()
	p, err := persona.Builtin(name)
	require.NoError(t, err)
	st := store.NewMemory()
	a, err := authenticator.New(authenticator.Config{Persona: p, Store: st})
	require.NoError(t, err)
	conn := inproc.Connect(ctaphid.NewDevice(a, a.DeviceInfo()))
	t.Cleanup(func() { _ = conn.Close(); _ = a.Close(); _ = st.Close() })
	return client.New(ctaphid.NewClient(conn), opts...), a
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func hash(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

func makeCred(t *testing.T, c *client.Client, tok *client.Token, rp, userID string, rk bool) *client.MakeCredentialResult {
	t.Helper()
	cdh := hash("mc " + userID)
	req := &ctap.MakeCredentialRequest{
		ClientDataHash: cdh, RP: &ctap.RPEntity{ID: rp},
		User:             &ctap.UserEntity{ID: []byte(userID), Name: userID + "@" + rp, DisplayName: userID},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: func() *int64 { v := int64(-7); return &v }(), Type: "public-key"}},
		Options:          &ctap.Options{RK: ctap.Bool(rk)},
		Extensions:       &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)},
	}
	if tok != nil {
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(cdh), tok.ProtocolParam()
	}
	res, err := c.MakeCredential(ctx(t), req)
	require.NoError(t, err)
	return res
}

func TestIntegrationPINAndCredentials(t *testing.T) {
	t.Parallel()
	var exchanges []client.Exchange
	c, a := realKey(t, "default", client.WithRecorder(func(e client.Exchange) { exchanges = append(exchanges, e) }))
	info, err := c.GetInfo(ctx(t))
	require.NoError(t, err)
	require.True(t, info.HasVersion(ctap.VersionFIDO21))

	const pin = "4711-secret"
	require.NoError(t, c.SetPIN(ctx(t), pin))
	_, err = c.GetPINToken(ctx(t), "0000", ctap.PermMakeCredential, "rp.example")
	require.ErrorIs(t, err, ctap.ErrPINInvalid)
	retries, _, err := c.PINRetries(ctx(t))
	require.NoError(t, err)
	require.Equal(t, 7, retries)

	// A CTAP 2.1 token authorises one makeCredential or getAssertion: fetch one each time.
	freshToken := func() *client.Token {
		tok, err := c.GetPINToken(ctx(t), pin, ctap.PermMakeCredential|ctap.PermGetAssertion, "rp.example")
		require.NoError(t, err)
		require.Equal(t, 2, tok.Protocol())
		return tok
	}
	var ids [][]byte
	for i := range 3 {
		r := makeCred(t, c, freshToken(), "rp.example", fmt.Sprintf("user%d", i), true)
		require.NotZero(t, r.AuthData.Flags&ctap.FlagUV)
		ids = append(ids, r.CredentialID)
	}
	cdh := hash("ga")
	tok := freshToken()
	all, err := c.Assertions(ctx(t), &ctap.GetAssertionRequest{RPID: "rp.example", ClientDataHash: cdh,
		PinUvAuthParam: tok.Auth(cdh), PinUvAuthProtocol: tok.ProtocolParam()})
	require.NoError(t, err)
	require.Len(t, all, 3)
	for i, r := range all {
		require.Equal(t, ids[2-i], r.CredentialID, "newest first")
		require.Equal(t, fmt.Sprintf("user%d", 2-i), string(r.User.ID))
	}

	// hmac-secret: the same salt gives the same output; with and without UV they differ.
	salt := hash("salt")
	outputs := map[bool][]byte{}
	for _, uv := range []bool{true, true, false} {
		hs, in, err := c.NewHMACSecret(ctx(t), salt, nil)
		require.NoError(t, err)
		req := &ctap.GetAssertionRequest{RPID: "rp.example", ClientDataHash: cdh,
			AllowList:  []ctap.CredentialDescriptor{{ID: ids[0], Type: "public-key"}},
			Extensions: &ctap.GetAssertionExtensions{HMACSecret: in}}
		if uv {
			tok := freshToken()
			req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(cdh), tok.ProtocolParam()
		}
		r, err := c.GetAssertion(ctx(t), req)
		require.NoError(t, err)
		out, _, err := hs.Output(r.AuthData)
		require.NoError(t, err)
		if prev, seen := outputs[uv]; seen {
			require.Equal(t, prev, out)
		}
		outputs[uv] = out
	}
	require.NotEqual(t, outputs[true], outputs[false])

	// Credential management sees the three accounts and deletes one.
	cmTok, err := c.GetPINToken(ctx(t), pin, ctap.PermCredentialManagement, "")
	require.NoError(t, err)
	cm := c.CredMgmt(cmTok)
	existing, _, err := cm.Metadata(ctx(t))
	require.NoError(t, err)
	require.Equal(t, uint64(3), existing)
	rps, err := cm.RPs(ctx(t))
	require.NoError(t, err)
	require.Len(t, rps, 1)
	require.Equal(t, "rp.example", rps[0].RP.ID)
	creds, err := cm.Credentials(ctx(t), rps[0].RPIDHash)
	require.NoError(t, err)
	require.Len(t, creds, 3)
	require.NoError(t, cm.UpdateUser(ctx(t), ids[1], ctap.UserEntity{ID: []byte("user1"), Name: "renamed"}))
	require.NoError(t, cm.DeleteCredential(ctx(t), ids[0]))
	existing, _, err = cm.Metadata(ctx(t))
	require.NoError(t, err)
	require.Equal(t, uint64(2), existing)

	// Large blobs: write and read back through the real key.
	lbTok, err := c.GetPINToken(ctx(t), pin, ctap.PermLargeBlobWrite, "")
	require.NoError(t, err)
	array, err := ctap.Marshal([]any{map[int]any{1: bytes.Repeat([]byte{7}, 700), 2: 3, 3: 700}})
	require.NoError(t, err)
	require.NoError(t, c.LargeBlobs().Write(ctx(t), array, lbTok))
	back, err := c.LargeBlobs().Read(ctx(t))
	require.NoError(t, err)
	require.Equal(t, array, back)

	// Change the PIN; the old one stops working.
	require.NoError(t, c.ChangePIN(ctx(t), pin, "new-pin-99"))
	_, err = c.GetPINToken(ctx(t), pin, ctap.PermCredentialManagement, "")
	require.ErrorIs(t, err, ctap.ErrPINInvalid)
	_, err = c.GetPINToken(ctx(t), "new-pin-99", ctap.PermGetAssertion, "rp.example")
	require.NoError(t, err)

	require.NotNil(t, a.AttestationRoot())
	for _, e := range exchanges {
		require.NotContains(t, e.Describe(), fmt.Sprintf("%x", pin))
	}
}

func TestIntegrationConfigAndBio(t *testing.T) {
	t.Parallel()
	c, _ := realKey(t, "default")
	require.NoError(t, c.SetPIN(ctx(t), "123456"))
	tok, err := c.GetPINToken(ctx(t), "123456", ctap.PermAuthenticatorConfig|ctap.PermBioEnrollment, "")
	require.NoError(t, err)
	require.NoError(t, c.Config(tok).SetMinPINLength(ctx(t), 6, nil, false))
	info, err := c.GetInfo(ctx(t))
	require.NoError(t, err)
	require.Equal(t, uint64(6), info.MinPINLength)
	require.NoError(t, c.Config(tok).ToggleAlwaysUV(ctx(t)))
	info, err = c.GetInfo(ctx(t))
	require.NoError(t, err)
	v, _ := info.Option("alwaysUv")
	require.True(t, v)

	bio := c.Bio(tok)
	si, err := bio.SensorInfo(ctx(t))
	require.NoError(t, err)
	require.NotZero(t, si.MaxCaptureSamples)
	none, err := bio.Enrollments(ctx(t))
	require.NoError(t, err)
	require.Empty(t, none)
	id, samples, err := bio.Enroll(ctx(t), "left index")
	require.NoError(t, err)
	require.Len(t, samples, int(si.MaxCaptureSamples))
	list, err := bio.Enrollments(ctx(t))
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, id, list[0].ID)
	require.Equal(t, "left index", list[0].FriendlyName)
	require.NoError(t, bio.Remove(ctx(t), id))
}

func TestIntegrationCTAP20UsesProtocolOne(t *testing.T) {
	t.Parallel()
	c, _ := realKey(t, "ctap20")
	require.NoError(t, c.SetPIN(ctx(t), "1234"))
	tok, err := c.GetPINToken(ctx(t), "1234", ctap.PermGetAssertion, "x.example")
	require.NoError(t, err)
	require.Equal(t, 1, tok.Protocol())
	r := makeCred(t, c, tok, "x.example", "u", false)
	cdh := hash("ga")
	as, err := c.GetAssertion(ctx(t), &ctap.GetAssertionRequest{RPID: "x.example", ClientDataHash: cdh,
		AllowList: []ctap.CredentialDescriptor{{ID: r.CredentialID, Type: "public-key"}}})
	require.NoError(t, err)
	require.NoError(t, as.Verify(r.PublicKey))
}

func TestIntegrationU2F(t *testing.T) {
	t.Parallel()
	c, _ := realKey(t, "default")
	v, err := c.Version(ctx(t))
	require.NoError(t, err)
	require.Equal(t, "U2F_V2", v)
	var ch, app [32]byte
	copy(app[:], hash("https://u2f.example"))
	copy(ch[:], hash("challenge"))
	reg, err := c.Register(ctx(t), ch, app)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(reg.Certificate)
	require.NoError(t, err)
	require.NoError(t, cert.CheckSignature(x509.ECDSAWithSHA256, u2f.RegisterSignedData(app, ch, reg.KeyHandle, reg.PublicKey), reg.Signature))

	_, err = c.Authenticate(ctx(t), u2f.ControlCheckOnly, ch, app, reg.KeyHandle)
	require.ErrorIs(t, err, u2f.SWConditionsNotSatisfied, "check-only says the handle is ours")
	var prev uint32
	for range 2 {
		as, err := c.Authenticate(ctx(t), u2f.ControlEnforceUserPresence, ch, app, reg.KeyHandle)
		require.NoError(t, err)
		require.Greater(t, as.Counter, prev)
		prev = as.Counter
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), reg.PublicKey[:])
		require.NoError(t, err)
		d := sha256.Sum256(u2f.AuthenticateSignedData(app, as.UserPresence, as.Counter, ch))
		require.True(t, ecdsa.VerifyASN1(pub, d[:], as.Signature))
	}
	var other [32]byte
	_, err = c.Authenticate(ctx(t), u2f.ControlEnforceUserPresence, ch, other, reg.KeyHandle)
	require.ErrorIs(t, err, u2f.SWWrongData)
}
