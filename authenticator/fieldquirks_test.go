package authenticator

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/stretchr/testify/require"
)

// TestFieldQuirks: each field-report quirk changes exactly the answer it names, and a key
// without it gives the conforming one.
func TestFieldQuirks(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 60) + "@contoso.example" // 76 bytes
	for _, on := range []bool{false, true} {
		t.Run("resetRefused", func(t *testing.T) {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.ResetRefused = on })
			st, _ := k.call(ctap.CmdReset, nil)
			require.Equal(t, map[bool]ctap.Status{false: ctap.StatusOK, true: ctap.ErrOperationDenied}[on], st)
		})
		t.Run("upFalseRefused", func(t *testing.T) {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.UPFalseRefused = on })
			c := k.coreMake(makeCredReq("example.com", []byte("alice"), true))
			req := gaReq("example.com", c.id)
			req.Options = &ctap.Options{UP: ctap.Bool(false)}
			st, _ := k.call(ctap.CmdGetAssertion, req)
			require.Equal(t, map[bool]ctap.Status{false: ctap.StatusOK, true: ctap.ErrInvalidOption}[on], st)
			st, _ = k.call(ctap.CmdGetAssertion, gaReq("example.com", c.id))
			require.Equal(t, ctap.StatusOK, st, "up=true is unaffected")
		})
		t.Run("upFalseIgnored", func(t *testing.T) {
			asked := 0
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.UPFalseIgnored = on })
			c := k.coreMake(makeCredReq("example.com", []byte("alice"), true))
			k.countAsks(&asked)
			req := gaReq("example.com", c.id)
			req.Options = &ctap.Options{UP: ctap.Bool(false)}
			var resp ctap.GetAssertionResponse
			k.must(ctap.CmdGetAssertion, req, &resp)
			ad, err := ctap.ParseAuthData(resp.AuthData)
			require.NoError(t, err)
			require.Equal(t, on, ad.Flags&ctap.FlagUP != 0, "the UP flag")
			require.Equal(t, map[bool]int{false: 0, true: 1}[on], asked, "touches asked for")
		})
		t.Run("pinTokenSingleUse", func(t *testing.T) {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.PINTokenSingleUse = on })
			require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
			mc := makeCredReq("example.com", []byte("alice"), true)
			mtok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
			mc.PinUvAuthParam, mc.PinUvAuthProtocol = authParam(t, 2, mtok, mc.ClientDataHash), ctap.Uint(2)
			c := k.coreMake(mc)
			// A browser's pre-flight: up=false with the token, then the same request with up.
			tok := k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
			pre := gaReq("example.com", c.id)
			pre.PinUvAuthParam, pre.PinUvAuthProtocol = authParam(t, 2, tok, pre.ClientDataHash), ctap.Uint(2)
			pre.Options = &ctap.Options{UP: ctap.Bool(false)}
			st, _ := k.call(ctap.CmdGetAssertion, pre)
			require.Equal(t, ctap.StatusOK, st)
			real := gaReq("example.com", c.id)
			real.PinUvAuthParam, real.PinUvAuthProtocol = authParam(t, 2, tok, real.ClientDataHash), ctap.Uint(2)
			st, _ = k.call(ctap.CmdGetAssertion, real)
			require.Equal(t, map[bool]ctap.Status{false: ctap.StatusOK, true: ctap.ErrPINAuthInvalid}[on], st)
		})
		t.Run("badSignatureWithHmacSecret", func(t *testing.T) {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.BadSignatureWithHMACSecret = on })
			mc := makeCredReq("example.com", []byte("alice"), true)
			mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
			c := k.coreMake(mc)
			k.coreAssert(gaReq("example.com", c.id), &c.pub) // without hmac-secret: always verifies
			req := gaReq("example.com", c.id)
			in, _, _ := k.coreHMACInput(2, salt())
			req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
			var resp ctap.GetAssertionResponse
			k.must(ctap.CmdGetAssertion, req, &resp)
			require.Equal(t, !on, verifiesES256(t, &c.pub, &resp, req.ClientDataHash))
		})
		t.Run("longUserFieldsRefused", func(t *testing.T) {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.LongUserFieldsRefused = on })
			mc := makeCredReq("example.com", []byte("alice"), true)
			mc.User.Name, mc.User.DisplayName = long, long
			st, _ := k.call(ctap.CmdMakeCredential, mc)
			require.Equal(t, map[bool]ctap.Status{false: ctap.StatusOK, true: ctap.ErrPINAuthInvalid}[on], st)
			if on {
				return
			}
			// The conforming key keeps the first 64 bytes and still answers for the account.
			var resp ctap.GetAssertionResponse
			k.must(ctap.CmdGetAssertion, gaReq("example.com"), &resp)
			require.Equal(t, []byte("alice"), []byte(resp.User.ID))
		})
	}
}

// TestZeroLengthPinUvAuthParamProbe: CTAP 2.1 §6.1.2 step 1, as Windows' touch probe meets it:
// the key waits for a touch, then answers PIN_NOT_SET without a PIN and PIN_INVALID with one;
// without a touch it answers OPERATION_DENIED. It never makes a credential.
func TestZeroLengthPinUvAuthParamProbe(t *testing.T) {
	t.Parallel()
	probe := func() map[int]any {
		// The struct encoding leaves an empty pinUvAuthParam out: the map keeps key 8.
		return map[int]any{1: cdh(), 2: map[string]any{"id": "login.microsoft.com"},
			3: map[string]any{"id": []byte("alice"), "name": "alice"},
			4: []any{map[string]any{"type": "public-key", "alg": -7}}, 7: map[string]any{"rk": true},
			8: []byte{}, 9: 2}
	}
	k := newTestKey(t, "default")
	st, _ := k.call(ctap.CmdMakeCredential, probe())
	require.Equal(t, ctap.ErrPINNotSet, st)
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	st, _ = k.call(ctap.CmdMakeCredential, probe())
	require.Equal(t, ctap.ErrPINInvalid, st)
	st, _ = k.callCtx(k.cancelWhenAsked(), ctap.CmdMakeCredential, probe())
	require.NotEqual(t, ctap.ErrPINInvalid, st, "no touch, no answer about the PIN")
	st, _ = k.call(ctap.CmdGetAssertion, gaReq("login.microsoft.com"))
	require.Equal(t, ctap.ErrNoCredentials, st, "the probe made no credential")
}

func verifiesES256(t *testing.T, pub *cose.Key, resp *ctap.GetAssertionResponse, cdh []byte) bool {
	t.Helper()
	ep, err := pub.ECDSA()
	require.NoError(t, err)
	d := sha256.Sum256(append(append([]byte{}, resp.AuthData...), cdh...))
	return ecdsa.VerifyASN1(ep, d[:], resp.Signature)
}

// countingPolicy says yes and counts the questions.
type countingPolicy struct{ n *int }

func (p countingPolicy) Ask(context.Context, user.Request) (user.Answer, error) {
	*p.n++
	return user.Yes, nil
}

// countAsks makes the simulated user say yes and count the questions in n.
func (k *testKey) countAsks(n *int) { k.user.Set(countingPolicy{n}) }
