package rp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/stretchr/testify/require"
)

const pin = "rp-test-pin"

// newKey plugs an in-process key of the named persona, with attestation changed when att is not
// empty, into a client, and sets the PIN when the persona has clientPin.
func newKey(t *testing.T, name, att string) (*client.Client, *authenticator.Authenticator) {
	t.Helper()
	p, err := persona.Builtin(name)
	require.NoError(t, err)
	if att != "" {
		p.Attestation = att
	}
	st := store.NewMemory()
	a, err := authenticator.New(authenticator.Config{Persona: p, Store: st})
	require.NoError(t, err)
	conn := inproc.Connect(ctaphid.NewDevice(a, a.DeviceInfo()))
	t.Cleanup(func() { _ = conn.Close(); _ = a.Close(); _ = st.Close() })
	c := client.New(ctaphid.NewClient(conn))
	if p.ClientPIN {
		require.NoError(t, c.SetPIN(ctx(t), pin))
	}
	return c, a
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func newRP(t *testing.T, opts ...rp.Option) *rp.RP {
	t.Helper()
	r, err := rp.New("login.example.com", "https://login.example.com", opts...)
	require.NoError(t, err)
	return r
}

func newUser(name string) *rp.User {
	return &rp.User{ID: []byte("id-" + name), Name: name + "@example.com", DisplayName: name}
}

func TestAttestationFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		persona, att  string
		conveyance    protocol.ConveyancePreference
		wantFmt       string
		wantType      string
		wantChain     bool
		wantUntrusted bool
	}{
		{persona: "default", conveyance: protocol.PreferDirectAttestation, wantFmt: "packed", wantType: "basic_full", wantChain: true},
		{persona: "default", conveyance: protocol.PreferDirectAttestation, wantUntrusted: true},
		{persona: "default", att: persona.AttestationSelf, conveyance: protocol.PreferDirectAttestation, wantFmt: "packed", wantType: "basic_surrogate"}, // FIDO metadata calls self attestation basic_surrogate,
		{persona: "default", att: persona.AttestationNone, conveyance: protocol.PreferDirectAttestation, wantFmt: "none", wantType: "none"},
		{persona: "default", conveyance: protocol.PreferNoAttestation, wantFmt: "none", wantType: "none"},
		{persona: "ctap20", conveyance: protocol.PreferDirectAttestation, wantFmt: "packed", wantType: "basic_full", wantChain: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%s/%s/untrusted=%v", tc.persona, tc.att, tc.conveyance, tc.wantUntrusted), func(t *testing.T) {
			t.Parallel()
			c, a := newKey(t, tc.persona, tc.att)
			root := a.AttestationRoot()
			if tc.wantUntrusted {
				_, other := newKey(t, tc.persona, tc.att) // another key state has another CA
				root = other.AttestationRoot()
			}
			r := newRP(t, rp.WithAttestationRoots(root))
			u := newUser("alice")
			reg, err := r.Register(ctx(t), c, u, rp.RegisterOptions{
				Attestation: tc.conveyance, UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
			if tc.wantUntrusted {
				require.ErrorIs(t, err, rp.ErrUntrustedAttestation)
				require.Empty(t, u.Credentials)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantFmt, reg.Credential.AttestationFormat)
			require.Equal(t, tc.wantType, reg.Credential.AttestationType)
			if tc.wantChain {
				require.NotEmpty(t, reg.Chain)
				require.True(t, reg.Chain[len(reg.Chain)-1].Equal(root), "chain ends at the key's CA")
			} else {
				require.Empty(t, reg.Chain)
			}
			require.True(t, reg.Credential.Flags.UserVerified)
			require.Len(t, u.Credentials, 1)

			res, err := r.Login(ctx(t), c, u, rp.LoginOptions{UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
			require.NoError(t, err)
			require.Equal(t, u, res.User)
			require.NotZero(t, res.Flags&ctap.FlagUV)
			require.Greater(t, res.SignCount, reg.Credential.Authenticator.SignCount)
		})
	}
}

func TestSeveralAccountsOneRP(t *testing.T) {
	t.Parallel()
	c, a := newKey(t, "default", "")
	r := newRP(t, rp.WithAttestationRoots(a.AttestationRoot()))
	names := []string{"alice", "bob", "carol"}
	users := map[string]*rp.User{}
	for _, n := range names {
		users[n] = newUser(n)
		_, err := r.Register(ctx(t), c, users[n], rp.RegisterOptions{ResidentKey: true, HMACSecret: true,
			CredProtect: ctap.CredProtectUVOptional, EnforceCredProtect: true,
			Attestation: protocol.PreferDirectAttestation, UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
		require.NoError(t, err)
	}
	// dave has a non-resident credential and a second one: users own several credentials.
	dave := newUser("dave")
	for range 2 {
		_, err := r.Register(ctx(t), c, dave, rp.RegisterOptions{Exclude: false})
		require.NoError(t, err)
	}
	require.Len(t, dave.Credentials, 2)

	// Discoverable login without a choice takes the first answer: the newest account.
	res, err := r.Login(ctx(t), c, nil, rp.LoginOptions{UV: rp.UV{PIN: pin}, UserVerification: protocol.VerificationRequired})
	require.NoError(t, err)
	require.Equal(t, "carol", res.User.DisplayName)
	require.Equal(t, 3, res.Accounts)

	// An account picker sees all three, newest first, and may choose any.
	var seen []string
	res, err = r.Login(ctx(t), c, nil, rp.LoginOptions{UV: rp.UV{PIN: pin}, Pick: func(list []*client.AssertionResult) int {
		for _, a := range list {
			seen = append(seen, string(a.User.ID))
		}
		return 2
	}})
	require.NoError(t, err)
	require.Equal(t, []string{"id-carol", "id-bob", "id-alice"}, seen)
	require.Equal(t, "alice", res.User.DisplayName)

	// Non-discoverable login for dave with either of his credentials in the allowList.
	first, err := r.Login(ctx(t), c, dave, rp.LoginOptions{})
	require.NoError(t, err)
	require.Equal(t, dave, first.User)
	require.Zero(t, first.Flags&ctap.FlagUV)
	second, err := r.Login(ctx(t), c, dave, rp.LoginOptions{})
	require.NoError(t, err)
	require.Greater(t, second.SignCount, first.SignCount)

	// hmac-secret: the same salt gives the same secret, as Windows relies on to unlock offline.
	salt := sha256.Sum256([]byte("windows device salt"))
	var outs [][]byte
	for range 2 {
		res, err := r.Login(ctx(t), c, users["bob"], rp.LoginOptions{UV: rp.UV{PIN: pin}, HMACSalt1: salt[:]})
		require.NoError(t, err)
		require.Len(t, res.HMACSecret1, 32)
		outs = append(outs, res.HMACSecret1)
	}
	require.Equal(t, outs[0], outs[1])
}

func TestCounterMustIncrease(t *testing.T) {
	t.Parallel()
	c, _ := newKey(t, "default", "")
	r := newRP(t)
	u := newUser("erin")
	_, err := r.Register(ctx(t), c, u, rp.RegisterOptions{})
	require.NoError(t, err)
	res, err := r.Login(ctx(t), c, u, rp.LoginOptions{})
	require.NoError(t, err)
	require.Equal(t, res.SignCount, u.Credentials[0].Authenticator.SignCount, "the stored counter follows logins")

	// A stored counter ahead of the key's (a clone's logins seen earlier) fails the login.
	u.Credentials[0].Authenticator.SignCount = res.SignCount + 1_000_000
	_, err = r.Login(ctx(t), c, u, rp.LoginOptions{})
	require.ErrorIs(t, err, rp.ErrCounterNotIncreased)
}

func TestCredProtectRequiredHidesCredentialWithoutUV(t *testing.T) {
	t.Parallel()
	c, _ := newKey(t, "default", "")
	r := newRP(t)
	u := newUser("frank")
	reg, err := r.Register(ctx(t), c, u, rp.RegisterOptions{ResidentKey: true, CredProtect: ctap.CredProtectUVRequired,
		EnforceCredProtect: true, UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
	require.NoError(t, err)
	require.NotNil(t, reg.Result.AuthData.Extensions)

	_, err = r.Login(ctx(t), c, nil, rp.LoginOptions{UserVerification: protocol.VerificationDiscouraged})
	require.ErrorIs(t, err, ctap.ErrNoCredentials)
	res, err := r.Login(ctx(t), c, nil, rp.LoginOptions{UV: rp.UV{PIN: pin}})
	require.NoError(t, err)
	require.Equal(t, u, res.User)
}

func TestUVRequiredWithoutUVFails(t *testing.T) {
	t.Parallel()
	c, _ := newKey(t, "no-hmac-secret", "")
	r := newRP(t)
	u := newUser("gina")
	_, err := r.Register(ctx(t), c, u, rp.RegisterOptions{UV: rp.UV{PIN: "wrong-pin"}})
	require.ErrorIs(t, err, ctap.ErrPINInvalid)
	_, err = r.Register(ctx(t), c, u, rp.RegisterOptions{UV: rp.UV{PIN: pin}, UserVerification: protocol.VerificationRequired})
	require.NoError(t, err)
	_, err = r.Login(ctx(t), c, u, rp.LoginOptions{UserVerification: protocol.VerificationRequired})
	require.Error(t, err, "an assertion without UV does not satisfy a page that requires it")
}

func TestUVNeverPrintsPIN(t *testing.T) {
	t.Parallel()
	uv := rp.UV{PIN: "918273"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		s := fmt.Sprintf(verb, uv)
		require.False(t, bytes.Contains([]byte(s), []byte("918273")), verb)
		require.Contains(t, s, "redacted", verb)
	}
	s := fmt.Sprintf("%+v", rp.LoginOptions{UV: uv})
	require.NotContains(t, s, "918273")
}

func TestU2FOnlyKey(t *testing.T) {
	t.Parallel()
	c, a := newKey(t, "u2f", "")
	r := newRP(t, rp.WithAttestationRoots(a.AttestationRoot()))
	u := newUser("hank")
	reg, err := r.Register(ctx(t), c, u, rp.RegisterOptions{U2F: true, Attestation: protocol.PreferDirectAttestation})
	require.NoError(t, err)
	require.Equal(t, "fido-u2f", reg.Credential.AttestationFormat)
	if a.AttestationRoot() != nil {
		require.NotEmpty(t, reg.Chain)
	}
	var last uint32
	for range 2 {
		res, err := r.Login(ctx(t), c, u, rp.LoginOptions{U2F: true})
		require.NoError(t, err)
		require.Greater(t, res.SignCount, last)
		last = res.SignCount
	}
}
