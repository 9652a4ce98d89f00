package authenticator

import (
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

func TestTokenPermissionChecks(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		mods  []func(*persona.Persona)
		perms uint64
		rpID  string
		want  ctap.Status
	}{
		{"mc with rp", nil, ctap.PermMakeCredential, "example.com", ctap.StatusOK},
		{"cm without rp", nil, ctap.PermCredentialManagement, "", ctap.StatusOK},
		{"all six", nil, 0x3f, "example.com", ctap.StatusOK},
		{"undefined bits ignored", nil, 0x80 | ctap.PermAuthenticatorConfig, "", ctap.StatusOK},
		{"mc without rp", nil, ctap.PermMakeCredential, "", ctap.ErrMissingParameter},
		{"ga without rp", nil, ctap.PermGetAssertion | ctap.PermCredentialManagement, "", ctap.ErrMissingParameter},
		{"lbw without largeBlobs", []func(*persona.Persona){func(p *persona.Persona) { p.LargeBlobs = false }}, ctap.PermLargeBlobWrite, "", ctap.ErrUnauthorizedPermission},
		{"acfg without authnrCfg", []func(*persona.Persona){func(p *persona.Persona) { p.Config = false }}, ctap.PermAuthenticatorConfig, "", ctap.ErrUnauthorizedPermission},
		{"be without sensor", []func(*persona.Persona){func(p *persona.Persona) { p.BuiltInUV, p.BioEnrollPre = false, false }}, ctap.PermBioEnrollment, "", ctap.ErrUnauthorizedPermission},
		{"cm without credMgmt", []func(*persona.Persona){func(p *persona.Persona) { p.CredMgmt, p.CredMgmtPre = false, false }}, ctap.PermCredentialManagement, "", ctap.ErrUnauthorizedPermission},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default", c.mods...)
			require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
			st, tok := k.pinToken(2, "1234", c.perms, c.rpID)
			require.Equal(t, c.want, st)
			n, _ := k.pinRetriesNow()
			require.Equal(t, 8, n)
			if st != ctap.StatusOK {
				return
			}
			for bit := uint64(1); bit <= 0x20; bit <<= 1 {
				msg := cdh()
				_, err := k.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, bit, c.rpID)
				require.Equal(t, c.perms&bit != 0, err == nil, "permission 0x%02x", bit)
			}
		})
	}
}

func TestTokenRequestErrors(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	_, pk, _ := k.sharedSecret(2)
	hashEnc := make([]byte, 32)
	rp := "example.com"
	cases := []struct {
		name string
		req  *ctap.ClientPINRequest
		want ctap.Status
	}{
		{"0x09 permissions 0", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms), KeyAgreement: rawCOSE(t, pk), PinHashEnc: hashEnc, Permissions: ctap.Uint(0), RPID: &rp}, ctap.ErrInvalidParameter},
		{"0x09 no permissions", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms), KeyAgreement: rawCOSE(t, pk), PinHashEnc: hashEnc}, ctap.ErrMissingParameter},
		{"0x09 no pinHashEnc", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms), KeyAgreement: rawCOSE(t, pk), Permissions: ctap.Uint(1), RPID: &rp}, ctap.ErrMissingParameter},
		{"0x05 with permissions", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: rawCOSE(t, pk), PinHashEnc: hashEnc, Permissions: ctap.Uint(1)}, ctap.ErrInvalidParameter},
		{"0x05 with rpId", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: rawCOSE(t, pk), PinHashEnc: hashEnc, RPID: &rp}, ctap.ErrInvalidParameter},
		{"0x05 no keyAgreement", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinToken), PinHashEnc: hashEnc}, ctap.ErrMissingParameter},
		{"0x05 protocol 7", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(7), SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: rawCOSE(t, pk), PinHashEnc: hashEnc}, ctap.ErrInvalidParameter},
		{"getKeyAgreement no protocol", &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)}, ctap.ErrMissingParameter},
		{"getKeyAgreement protocol 3", &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(3), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)}, ctap.ErrInvalidParameter},
		{"unknown subcommand", &ctap.ClientPINRequest{SubCommand: ctap.Uint(8)}, ctap.ErrInvalidSubcommand},
		{"huge subcommand", &ctap.ClientPINRequest{SubCommand: ctap.Uint(1 << 40)}, ctap.ErrInvalidSubcommand},
	}
	for _, c := range cases {
		st, _ := k.call(ctap.CmdClientPIN, c.req)
		require.Equal(t, c.want, st, c.name)
	}
	for _, raw := range []struct {
		name string
		body []byte
		want ctap.Status
	}{
		{"empty", nil, ctap.ErrMissingParameter},
		{"no subCommand", []byte{0xa1, 0x01, 0x02}, ctap.ErrMissingParameter},
		{"subCommand a string", []byte{0xa1, 0x02, 0x61, 0x31}, ctap.ErrCBORUnexpectedType},
		{"truncated", []byte{0xa2, 0x02}, ctap.ErrInvalidCBOR},
		{"duplicate key", []byte{0xa2, 0x02, 0x01, 0x02, 0x01}, ctap.ErrInvalidCBOR},
	} {
		st, _ := k.call(ctap.CmdClientPIN, raw.body)
		require.Equal(t, raw.want, st, raw.name)
	}
	n, _ := k.pinRetriesNow()
	require.Equal(t, 8, n)
}

func TestClientPINByPersona(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "ctap20")
	var resp ctap.ClientPINResponse
	k.must(ctap.CmdClientPIN, &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)}, &resp)
	require.Nil(t, resp.PowerCycleState, "a CTAP 2.0 key does not report powerCycleState")
	require.Equal(t, uint64(8), *resp.PINRetries)
	st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)})
	require.Equal(t, ctap.ErrInvalidParameter, st, "ctap20 speaks protocol one only")
	require.Equal(t, ctap.StatusOK, k.setPIN(1, "1234"))
	for _, sub := range []uint64{ctap.PINGetPinUvAuthTokenUsingPinWithPerms, ctap.PINGetPinUvAuthTokenUsingUvWithPerms, ctap.PINGetUVRetries} {
		st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(1), SubCommand: ctap.Uint(sub)})
		require.Equal(t, ctap.ErrInvalidSubcommand, st, "subcommand %d", sub)
	}
	tok := k.mustToken(1, "1234", 0, "")
	msg := cdh()
	_, err := k.verifyPinUvAuth(ctap.Uint(1), authParam(t, 1, tok, msg), msg, ctap.PermCredentialManagement, "")
	require.Error(t, err, "no FIDO_2_1_PRE: the legacy token is mc|ga only")
	_, err = k.verifyPinUvAuth(ctap.Uint(1), authParam(t, 1, tok, msg), msg, ctap.PermMakeCredential, "")
	require.NoError(t, err)

	d := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, d.setPIN(2, "1234"))
	tok = d.mustToken(2, "1234", 0, "")
	for _, perm := range []uint64{ctap.PermCredentialManagement, ctap.PermBioEnrollment} {
		_, err := d.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, perm, "")
		require.NoError(t, err, "FIDO_2_1_PRE platforms manage credentials with a getPinToken token")
	}
	_, err = d.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, ctap.PermAuthenticatorConfig, "")
	require.Error(t, err)

	u := newTestKey(t, "u2f")
	st, _ = u.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)})
	require.Equal(t, ctap.ErrInvalidCommand, st)
}

func TestTokenRPBinding(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	check := func(tok []byte, perm uint64, rp string) ctap.Status {
		msg := cdh()
		_, err := k.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, perm, rp)
		return ctap.StatusOf(err)
	}
	tok := k.mustToken(2, "1234", ctap.PermGetAssertion, "a.example")
	require.Equal(t, ctap.ErrPINAuthInvalid, check(tok, ctap.PermGetAssertion, "b.example"))
	require.Equal(t, ctap.StatusOK, check(tok, ctap.PermGetAssertion, "a.example"))

	tok = k.mustToken(2, "1234", ctap.PermCredentialManagement, "")
	require.Equal(t, "", k.tokenBoundRP())
	require.Equal(t, ctap.StatusOK, check(tok, ctap.PermCredentialManagement, "a.example"))
	require.Equal(t, "a.example", k.tokenBoundRP(), "an unbound token binds to its first RP")
	require.Equal(t, ctap.ErrPINAuthInvalid, check(tok, ctap.PermCredentialManagement, "b.example"))
	require.Equal(t, ctap.ErrPINAuthInvalid, check(tok, ctap.PermGetAssertion, "a.example"), "no ga permission")
	require.Equal(t, ctap.ErrPINAuthInvalid, check(append([]byte{}, make([]byte, 32)...), ctap.PermCredentialManagement, "a.example"), "wrong token")
}

func TestTokenTimers(t *testing.T) {
	t.Parallel()
	check := func(k *testKey, tok []byte) ctap.Status {
		msg := cdh()
		_, err := k.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, ctap.PermGetAssertion, "example.com")
		return ctap.StatusOf(err)
	}
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))

	tok := k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
	k.clock.Advance(initialTokenUse + time.Second)
	require.Equal(t, ctap.ErrPINAuthInvalid, check(k, tok), "unused for 30 s")

	tok = k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
	k.clock.Advance(20 * time.Second)
	require.Equal(t, ctap.StatusOK, check(k, tok))
	k.clock.Advance(9 * time.Minute)
	require.Equal(t, ctap.StatusOK, check(k, tok), "a used token lives on")
	k.clock.Advance(time.Minute)
	require.Equal(t, ctap.ErrPINAuthInvalid, check(k, tok), "10 minutes at most")

	tok = k.mustToken(2, "1234", ctap.PermGetAssertion|ctap.PermLargeBlobWrite, "example.com")
	require.Equal(t, ctap.StatusOK, check(k, tok))
	k.afterTokenUse()
	require.Equal(t, ctap.ErrPINAuthInvalid, check(k, tok), "ga consumed")
	msg := cdh()
	use, err := k.verifyPinUvAuth(ctap.Uint(2), authParam(t, 2, tok, msg), msg, ctap.PermLargeBlobWrite, "")
	require.NoError(t, err, "lbw survives afterTokenUse")
	require.False(t, use.UserVerified)
	require.False(t, use.UserPresent)
}
