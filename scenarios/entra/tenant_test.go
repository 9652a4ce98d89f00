package entra

import (
	"context"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/stretchr/testify/require"
)

func setup(t *testing.T, p Policy) (context.Context, *client.Client, *Tenant, *emulator.Key) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	conn := k.Connect()
	t.Cleanup(func() { _ = conn.Close(); _ = k.Close() })
	hid := ctaphid.NewClient(conn)
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	c := client.New(hid)
	require.NoError(t, c.SetPIN(ctx, "1234"))
	ten, err := New(p, WithTrustedRoots(k.Auth.AttestationRoot()))
	require.NoError(t, err)
	return ctx, c, ten, k
}

func registerOn(ctx context.Context, t *testing.T, c *client.Client, ten *Tenant, upn string) (*Credential, error) {
	t.Helper()
	p, err := ten.BeginRegistration(upn)
	require.NoError(t, err)
	tok, err := c.GetPINToken(ctx, "1234", ctap.PermMakeCredential, RPID)
	require.NoError(t, err)
	p.Request.PinUvAuthParam, p.Request.PinUvAuthProtocol = tok.Auth(p.ClientDataHash), tok.ProtocolParam()
	require.True(t, *p.Request.Options.RK)
	require.True(t, *p.Request.Extensions.HMACSecret)
	require.Equal(t, uint64(CredProtectLevel), *p.Request.Extensions.CredProtect)
	res, err := c.MakeCredential(ctx, p.Request)
	require.NoError(t, err)
	return ten.FinishRegistration(p, res)
}

func assert(ctx context.Context, t *testing.T, c *client.Client, n *Nonce) *client.AssertionResult {
	t.Helper()
	tok, err := c.GetPINToken(ctx, "1234", ctap.PermGetAssertion, RPID)
	require.NoError(t, err)
	req := n.Request()
	require.Empty(t, req.AllowList)
	req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(n.ClientDataHash()), tok.ProtocolParam()
	a, err := c.GetAssertion(ctx, req)
	require.NoError(t, err)
	return a
}

func TestSignInNonceIsSingleUse(t *testing.T) {
	t.Parallel()
	ctx, c, ten, _ := setup(t, Policy{EnforceAttestation: true})
	cred, err := registerOn(ctx, t, c, ten, "alice@contoso.com")
	require.NoError(t, err)
	require.Equal(t, "alice@contoso.com", cred.UPN)

	n, err := ten.IssueNonce()
	require.NoError(t, err)
	a := assert(ctx, t, c, n)
	si, err := ten.Redeem(n, a)
	require.NoError(t, err)
	require.Equal(t, "alice@contoso.com", si.UPN)
	require.Equal(t, "alice@contoso.com", ten.AccountByHandle(UserHandle("alice@contoso.com")))

	_, err = ten.Redeem(n, a)
	require.Equal(t, host.CodeKeyError, Code(err), "a redeemed nonce is refused")
}

func TestRemovedAndBlockedCredentials(t *testing.T) {
	t.Parallel()
	ctx, c, ten, k := setup(t, Policy{})
	cred, err := registerOn(ctx, t, c, ten, "alice@contoso.com")
	require.NoError(t, err)

	ten.Block(k.Persona.AAGUID.String())
	n, err := ten.IssueNonce()
	require.NoError(t, err)
	_, err = ten.Redeem(n, assert(ctx, t, c, n))
	require.Equal(t, host.CodeAAGUIDBlocked, Code(err))
	_, err = registerOn(ctx, t, c, ten, "bob@contoso.com")
	require.Equal(t, host.CodeAAGUIDBlocked, Code(err))

	ten.Allow(k.Persona.AAGUID.String())
	require.True(t, ten.RemoveCredential("alice@contoso.com", cred.ID))
	require.False(t, ten.RemoveCredential("bob@contoso.com", cred.ID), "not bob's credential")
	// bob's refused credential is newest on the key; the key still holds alice's too.
	n, err = ten.IssueNonce()
	require.NoError(t, err)
	list, err := c.Assertions(ctx, func() *ctap.GetAssertionRequest {
		tok, err := c.GetPINToken(ctx, "1234", ctap.PermGetAssertion, RPID)
		require.NoError(t, err)
		r := n.Request()
		r.PinUvAuthParam, r.PinUvAuthProtocol = tok.Auth(n.ClientDataHash()), tok.ProtocolParam()
		return r
	}())
	require.NoError(t, err)
	require.Len(t, list, 2)
	_, err = ten.Redeem(n, list[1])
	require.Equal(t, host.CodeCredentialRevoked, Code(err))
	require.True(t, ten.Credentials("alice@contoso.com")[0].Removed)
}

func TestAAGUIDNormalisation(t *testing.T) {
	t.Parallel()
	ten, err := New(Policy{AAGUIDBlock: []string{"6F1A7B3E-0C1D-4E5F-9A8B-F1D0A11AB001"}})
	require.NoError(t, err)
	var a [16]byte
	copy(a[:], []byte{0x6f, 0x1a, 0x7b, 0x3e, 0x0c, 0x1d, 0x4e, 0x5f, 0x9a, 0x8b, 0xf1, 0xd0, 0xa1, 0x1a, 0xb0, 0x01})
	require.NotEmpty(t, ten.aaguidRefused(a))
	ten.Allow("6f1a7b3e0c1d4e5f9a8bf1d0a11ab001")
	require.Empty(t, ten.aaguidRefused(a))
	a[0] = 0
	require.NotEmpty(t, ten.aaguidRefused(a), "an allow list admits only its AAGUIDs")
}

// TestCounterCheckIsATenantSetting: an assertion whose counter is below one Entra already saw
// (redeemed out of order here) is accepted by default and refused with counterMustIncrease.
func TestCounterCheckIsATenantSetting(t *testing.T) {
	t.Parallel()
	for _, strict := range []bool{false, true} {
		ctx, c, ten, _ := setup(t, Policy{CounterMustIncrease: strict})
		_, err := registerOn(ctx, t, c, ten, "alice@contoso.com")
		require.NoError(t, err)
		n1, err := ten.IssueNonce()
		require.NoError(t, err)
		a1 := assert(ctx, t, c, n1)
		n2, err := ten.IssueNonce()
		require.NoError(t, err)
		a2 := assert(ctx, t, c, n2)
		require.Greater(t, a2.AuthData.SignCount, a1.AuthData.SignCount)
		_, err = ten.Redeem(n2, a2)
		require.NoError(t, err)
		si, err := ten.Redeem(n1, a1)
		if strict {
			require.Equal(t, host.CodeKeyError, Code(err))
			require.ErrorContains(t, err, "signature counter did not increase")
			continue
		}
		require.NoError(t, err)
		require.Equal(t, a2.AuthData.SignCount, si.Credential.Counter, "the stored counter never goes back")
	}
}

// TestRegistrationAsksForES256AndRS256: Graph's creationOptions offer -7 and -257 only, so a key
// with EdDSA alone cannot be registered.
func TestRegistrationAsksForES256AndRS256(t *testing.T) {
	t.Parallel()
	ten, err := New(Policy{})
	require.NoError(t, err)
	p, err := ten.BeginRegistration("alice@contoso.com")
	require.NoError(t, err)
	var algs []int64
	for _, cp := range p.Request.PubKeyCredParams {
		algs = append(algs, *cp.Alg)
	}
	require.Equal(t, []int64{-7, -257}, algs)
}
