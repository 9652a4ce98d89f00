package authenticator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/stretchr/testify/require"
)

// testKey is a key under test with a controllable clock and user.
type testKey struct {
	*Authenticator
	t     testing.TB
	clock *clock.Virtual
	user  *user.Switch
}

// epoch is where test keys' clocks start.
var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// cancelWhenAsked makes the simulated user one who never reacts and returns a context that is
// cancelled (as by CTAPHID_CANCEL) as soon as the key asks them something.
func (k *testKey) cancelWhenAsked() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	k.t.Cleanup(cancel)
	k.user.Set(askedPolicy(func() { cancel() }))
	return ctx
}

// askedPolicy calls asked when a question is put, then waits until the question is cancelled.
type askedPolicy func()

func (f askedPolicy) Ask(ctx context.Context, _ user.Request) (user.Answer, error) {
	f()
	<-ctx.Done()
	return user.Timeout, ctx.Err()
}

// newTestKey builds a key with an in-memory store, the named built-in persona (or p if given),
// a virtual clock and a user who always says yes until told otherwise.
func newTestKey(t testing.TB, personaName string, mods ...func(*persona.Persona)) *testKey {
	t.Helper()
	p, err := persona.Builtin(personaName)
	require.NoError(t, err)
	for _, m := range mods {
		m(p)
	}
	c := clock.NewVirtual(epoch)
	sw := user.NewSwitch(user.Always)
	st := store.NewMemory()
	a, err := New(Config{Persona: p, Store: st, User: sw, Clock: c})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close(); _ = st.Close() })
	return &testKey{Authenticator: a, t: t, clock: c, user: sw}
}

// call sends one CTAP2 command with req (a request struct, a map, raw []byte CBOR, or nil) and
// returns the status and the CBOR body.
func (k *testKey) call(cmd ctap.Command, req any) (ctap.Status, []byte) {
	k.t.Helper()
	return k.callCtx(context.Background(), cmd, req)
}

func (k *testKey) callCtx(ctx context.Context, cmd ctap.Command, req any) (ctap.Status, []byte) {
	k.t.Helper()
	var body []byte
	switch v := req.(type) {
	case nil:
	case []byte:
		body = v
	default:
		var err error
		body, err = ctap.Marshal(v)
		require.NoError(k.t, err)
	}
	resp := k.HandleCBOR(ctx, append([]byte{byte(cmd)}, body...), func(byte) {})
	require.NotEmpty(k.t, resp)
	return ctap.Status(resp[0]), resp[1:]
}

// must sends a command that must succeed and decodes its response into out (when non-nil).
func (k *testKey) must(cmd ctap.Command, req any, out any) {
	k.t.Helper()
	st, body := k.call(cmd, req)
	require.Equal(k.t, ctap.StatusOK, st, "%v", cmd)
	if out != nil {
		require.NoError(k.t, ctap.Unmarshal(body, out))
	}
}

// info returns getInfo.
func (k *testKey) info() *ctap.GetInfoResponse {
	k.t.Helper()
	var gi ctap.GetInfoResponse
	k.must(ctap.CmdGetInfo, nil, &gi)
	return &gi
}

// sharedSecret runs getKeyAgreement and encapsulates, as a platform does.
func (k *testKey) sharedSecret(v int) (pinuv.Protocol, cose.Key, []byte) {
	k.t.Helper()
	p, ok := pinuv.ByVersion(v)
	require.True(k.t, ok)
	var resp ctap.ClientPINResponse
	k.must(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)}, &resp)
	peer, err := cose.Unmarshal(resp.KeyAgreement)
	require.NoError(k.t, err)
	platformKey, shared, err := pinuv.Encapsulate(p, rand.Reader, peer)
	require.NoError(k.t, err)
	return p, platformKey, shared
}

func rawCOSE(t testing.TB, key cose.Key) []byte {
	t.Helper()
	b, err := key.Marshal()
	require.NoError(t, err)
	return b
}

// setPIN sets the first PIN with protocol v and returns the status.
func (k *testKey) setPIN(v int, pin string) ctap.Status {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	padded, err := pinuv.PadPIN(pin)
	require.NoError(k.t, err)
	enc, err := p.Encrypt(shared, padded)
	require.NoError(k.t, err)
	st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINSetPIN),
		KeyAgreement: rawCOSE(k.t, pk), NewPinEnc: enc, PinUvAuthParam: p.Authenticate(shared, enc),
	})
	return st
}

// pinToken gets a pinUvAuthToken with permissions (getPinUvAuthTokenUsingPinWithPermissions; with
// perms 0 the legacy getPinToken) and returns the status and the decrypted token.
func (k *testKey) pinToken(v int, pin string, perms uint64, rpID string) (ctap.Status, []byte) {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	h := sha256.Sum256([]byte(pin))
	enc, err := p.Encrypt(shared, h[:16])
	require.NoError(k.t, err)
	req := &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)), KeyAgreement: rawCOSE(k.t, pk), PinHashEnc: enc}
	if perms == 0 {
		req.SubCommand = ctap.Uint(ctap.PINGetPinToken)
	} else {
		req.SubCommand = ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms)
		req.Permissions = ctap.Uint(perms)
		if rpID != "" {
			req.RPID = &rpID
		}
	}
	st, body := k.call(ctap.CmdClientPIN, req)
	if st != ctap.StatusOK {
		return st, nil
	}
	var resp ctap.ClientPINResponse
	require.NoError(k.t, ctap.Unmarshal(body, &resp))
	tok, err := p.Decrypt(shared, resp.PinUvAuthToken)
	require.NoError(k.t, err)
	return st, tok
}

// mustToken is pinToken that must succeed.
func (k *testKey) mustToken(v int, pin string, perms uint64, rpID string) []byte {
	k.t.Helper()
	st, tok := k.pinToken(v, pin, perms, rpID)
	require.Equal(k.t, ctap.StatusOK, st)
	return tok
}

// authParam computes pinUvAuthParam = authenticate(token, msg) for protocol v.
func authParam(t testing.TB, v int, token, msg []byte) []byte {
	t.Helper()
	p, ok := pinuv.ByVersion(v)
	require.True(t, ok)
	return p.Authenticate(token, msg)
}

// cdh returns a fresh client data hash.
func cdh() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// makeCredReq is a minimal valid makeCredential request for rpID and userID.
func makeCredReq(rpID string, userID []byte, rk bool) *ctap.MakeCredentialRequest {
	alg := int64(-7)
	r := &ctap.MakeCredentialRequest{
		ClientDataHash:   cdh(),
		RP:               &ctap.RPEntity{ID: rpID, Name: rpID},
		User:             &ctap.UserEntity{ID: userID, Name: string(userID), DisplayName: "User " + string(userID)},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
	}
	if rk {
		r.Options = &ctap.Options{RK: ctap.Bool(true)}
	}
	return r
}
