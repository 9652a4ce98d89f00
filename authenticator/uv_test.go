package authenticator

import (
	"context"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// uvEnroll stores one fingerprint directly, so these tests do not depend on bioEnrollment.
func (k *testKey) uvEnroll() {
	k.t.Helper()
	require.NoError(k.t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{0x01}, FriendlyName: "thumb"}))
}

// uvToken runs getPinUvAuthTokenUsingUvWithPermissions and returns the decrypted token.
func (k *testKey) uvToken(v int, perms uint64, rpID string) (ctap.Status, []byte) {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	req := &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingUvWithPerms),
		KeyAgreement: rawCOSE(k.t, pk), Permissions: ctap.Uint(perms)}
	if rpID != "" {
		req.RPID = &rpID
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

// uvRetriesNow reads getUVRetries over the wire.
func (k *testKey) uvRetriesNow() int {
	k.t.Helper()
	var resp ctap.ClientPINResponse
	k.must(ctap.CmdClientPIN, &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetUVRetries)}, &resp)
	require.NotNil(k.t, resp.UVRetries)
	return int(*resp.UVRetries)
}

func TestUVTokenBothProtocols(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		k.uvEnroll()
		asked := k.user.Asked()
		st, tok := k.uvToken(v, ctap.PermMakeCredential|ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.StatusOK, st)
		require.Equal(t, asked+1, k.user.Asked(), "one finger per request")
		msg := cdh()
		use, err := k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, tok, msg), msg, ctap.PermMakeCredential, "example.com")
		require.NoError(t, err)
		require.True(t, use.UserVerified)
		require.True(t, use.UserPresent, "a finger on the sensor is also presence")
		_, err = k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, tok, msg), msg, ctap.PermMakeCredential, "other.example")
		require.Error(t, err)
		require.Equal(t, maxUVRetries, k.uvRetriesNow())
	}
}

func TestUVTokenErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		enroll bool
		perms  uint64
		rpID   string
		want   ctap.Status
	}{
		{"not enrolled", false, ctap.PermGetAssertion, "example.com", ctap.ErrNotAllowed},
		{"permissions 0", true, 0, "example.com", ctap.ErrInvalidParameter},
		{"ga without rp", true, ctap.PermGetAssertion, "", ctap.ErrMissingParameter},
		{"be via UV", true, ctap.PermBioEnrollment, "", ctap.ErrUnauthorizedPermission},
		{"acfg via UV", true, ctap.PermAuthenticatorConfig, "", ctap.ErrUnauthorizedPermission},
		{"cm via UV", true, ctap.PermCredentialManagement, "", ctap.StatusOK},
		{"lbw via UV", true, ctap.PermLargeBlobWrite, "", ctap.StatusOK},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			if c.enroll {
				k.uvEnroll()
			}
			st, _ := k.uvToken(2, c.perms, c.rpID)
			require.Equal(t, c.want, st)
			require.Equal(t, maxUVRetries, k.uvRetriesNow())
		})
	}
	k := newTestKey(t, "default", func(p *persona.Persona) { p.BuiltInUV, p.BioEnrollPre = false, false })
	st, _ := k.uvToken(2, ctap.PermGetAssertion, "example.com")
	require.Equal(t, ctap.ErrInvalidSubcommand, st)
	st, _ = k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetUVRetries)})
	require.Equal(t, ctap.ErrInvalidSubcommand, st)
}

func TestUVLockout(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	k.uvEnroll()
	try := func() ctap.Status {
		st, _ := k.uvToken(2, ctap.PermGetAssertion, "example.com")
		return st
	}
	k.user.Set(user.Fixed(user.No))
	require.Equal(t, ctap.ErrUVInvalid, try())
	require.Equal(t, 7, k.uvRetriesNow())
	require.Equal(t, ctap.ErrUVInvalid, try())
	require.Equal(t, ctap.ErrUVBlocked, try(), "three failures since power-up")
	k.user.Set(user.Always)
	asked := k.user.Asked()
	require.Equal(t, ctap.ErrUVBlocked, try())
	require.Equal(t, asked, k.user.Asked(), "a blocked sensor asks nobody")
	require.Equal(t, 5, k.uvRetriesNow())

	require.NoError(t, k.PowerCycle())
	require.Equal(t, ctap.StatusOK, try())
	require.Equal(t, maxUVRetries, k.uvRetriesNow())

	k.user.Set(user.Fixed(user.No))
	var last ctap.Status
	for i := 0; i < maxUVRetries; i++ {
		if last == ctap.ErrUVBlocked {
			require.NoError(t, k.PowerCycle())
		}
		last = try()
		require.Equal(t, maxUVRetries-1-i, k.uvRetriesNow())
	}
	require.Equal(t, ctap.ErrUVBlocked, last)
	k.user.Set(user.Always)
	require.NoError(t, k.PowerCycle())
	require.Equal(t, ctap.ErrUVBlocked, try(), "blocked across power cycles")

	// The PIN unblocks the sensor.
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
	require.Equal(t, maxUVRetries, k.uvRetriesNow())
	require.Equal(t, ctap.StatusOK, try())
}

func TestUVTimeoutAndCancelCostNothing(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	k.uvEnroll()
	k.user.Set(user.Fixed(user.Timeout))
	st, _ := k.uvToken(1, ctap.PermGetAssertion, "example.com")
	require.Equal(t, ctap.ErrUserActionTimeout, st)
	require.Equal(t, maxUVRetries, k.uvRetriesNow())

	k.user.SetManual(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &request{cmd: ctap.CmdClientPIN}
	err := k.performBuiltInUV(ctx, r, "example.com")
	require.Equal(t, ctap.ErrKeepaliveCancel, ctap.StatusOf(err))
	require.Equal(t, maxUVRetries, k.uvRetriesNow())
}

func TestUVRetriesPersistAndReset(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/key.db"
	k, closeKey := pinFileKey(t, path)
	k.uvEnroll()
	k.user.Set(user.Fixed(user.No))
	st, _ := k.uvToken(2, ctap.PermGetAssertion, "example.com")
	require.Equal(t, ctap.ErrUVInvalid, st)
	closeKey()

	k, closeKey = pinFileKey(t, path)
	defer closeKey()
	require.Equal(t, maxUVRetries-1, k.uvRetriesNow(), "survives a restart")
	require.NoError(t, k.Store().Reset())
	require.Equal(t, maxUVRetries, k.uvRetriesNow(), "a reset key starts afresh")
}

func TestBuiltInUVForCommands(t *testing.T) {
	t.Parallel()
	r := &request{cmd: ctap.CmdGetAssertion}
	ctx := context.Background()
	cases := []struct {
		name   string
		mods   []func(*persona.Persona)
		enroll bool
		pin    bool
		answer user.Answer
		fails  int // failures before this attempt, to exhaust the counter
		want   ctap.Status
	}{
		{"match", nil, true, false, user.Yes, 0, ctap.StatusOK},
		{"no sensor", []func(*persona.Persona){func(p *persona.Persona) { p.BuiltInUV, p.BioEnrollPre = false, false }}, false, false, user.Yes, 0, ctap.ErrInvalidOption},
		{"not enrolled", nil, false, false, user.Yes, 0, ctap.ErrInvalidOption},
		{"mismatch, no PIN", nil, true, false, user.No, 0, ctap.ErrOperationDenied},
		{"mismatch, PIN set", nil, true, true, user.No, 0, ctap.ErrPUATRequired},
		{"blocked, no PIN", nil, true, false, user.Yes, maxUVRetries, ctap.ErrPINBlocked},
		{"blocked, PIN set", nil, true, true, user.Yes, maxUVRetries, ctap.ErrPUATRequired},
		{"timeout", nil, true, false, user.Timeout, 0, ctap.ErrUserActionTimeout},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default", c.mods...)
			if c.enroll {
				k.uvEnroll()
			}
			if c.pin {
				require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
			}
			if c.fails > 0 {
				k.mu.Lock()
				require.NoError(t, k.storeUVRetries(maxUVRetries-c.fails))
				k.mu.Unlock()
			}
			k.user.Set(user.Fixed(c.answer))
			require.Equal(t, c.want, ctap.StatusOf(k.builtInUV(ctx, r, "example.com")))
		})
	}
}
