package winmodel

import (
	"context"
	"github.com/fidolab/fidolab/harness/client"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/stretchr/testify/require"
)

func signIn(pin string) host.Action { return host.Action{Name: host.ActLockScreenSignIn, PIN: pin} }

func TestLockScreenSignsInAsLastAdded(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com", "bob@contoso.com", "carol@contoso.com")

	m := k.mark()
	out, notes := do(t, h, signIn("1234"))
	require.Equal(t, host.KindSignedIn, out.Kind, out.Reason)
	require.Equal(t, "carol@contoso.com", out.Account)
	require.NotContains(t, k.commands(m), "authenticatorGetNextAssertion")
	joined := strings.Join(notes, "\n")
	require.Contains(t, joined, "reported 3 credential(s)")
	require.Contains(t, joined, "protocol 2")
}

func TestOldestFirstKeySignsInAsFirstAdded(t *testing.T) {
	t.Parallel()
	k := newKey(t, "base: default\nname: oldest-first\nquirks: {oldestFirst: true}\n")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com", "bob@contoso.com", "carol@contoso.com")
	out, _ := do(t, h, signIn("1234"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
}

func TestWebAuthnPick(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com", "bob@contoso.com", "carol@contoso.com")
	for _, tc := range []struct{ pick, want string }{
		{"bob@contoso.com", "signed-in as bob@contoso.com"},
		{"alice@contoso.com", "signed-in as alice@contoso.com"},
		{"", "signed-in as carol@contoso.com"},
		{"mallory@contoso.com", "error no-credentials"},
	} {
		m := k.mark()
		out, _ := do(t, h, host.Action{Name: host.ActWebAuthnSignIn, PIN: "1234", Pick: tc.pick})
		require.Equal(t, tc.want, out.String(), "pick %q: %s", tc.pick, out.Reason)
		require.Contains(t, k.commands(m), "authenticatorGetNextAssertion")
	}
}

func TestOfflineNeedsEarlierOnlineSignIn(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	do(t, h, host.Action{Name: host.ActGoOffline})
	out, _ := do(t, h, signIn("1234"))
	require.Equal(t, "error offline-no-cached-secret", out.String(), out.Reason)

	do(t, h, host.Action{Name: host.ActGoOnline})
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)

	do(t, h, host.Action{Name: host.ActGoOffline})
	out, _ = do(t, h, host.Action{Name: host.ActUnlock, PIN: "1234"})
	require.Equal(t, "unlocked as alice@contoso.com", out.String(), out.Reason)
	do(t, h, host.Action{Name: host.ActSignOut})
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)

	// A tampered cache stands in for a key whose hmac-secret output changed.
	for _, e := range h.cache {
		e.secret[0] ^= 1
	}
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "error offline-secret-mismatch", out.String(), out.Reason)
}

func TestUnlockNeedsSessionOfSameAccount(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	out, _ := do(t, h, host.Action{Name: host.ActUnlock, PIN: "1234"})
	require.Equal(t, "not-offered unsupported-scenario", out.String())
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
	register(t, h, "bob@contoso.com") // now bob is first on the key
	out, _ = do(t, h, host.Action{Name: host.ActUnlock, PIN: "1234"})
	require.Equal(t, "error no-credentials", out.String(), out.Reason)
}

func TestWrongPINThreeTimes(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	var got []string
	for range 3 {
		out, _ := do(t, h, signIn("0000"))
		got = append(got, out.String())
	}
	require.Equal(t, []string{"error pin-invalid", "error pin-invalid", "error pin-auth-blocked"}, got)
	do(t, h, host.Action{Name: host.ActReplug})
	out, notes := do(t, h, signIn("0000"))
	require.Equal(t, "error pin-invalid", out.String())
	require.Contains(t, strings.Join(notes, "\n"), "retries left")
}

func TestPINBlockedAtZero(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	var last string
	for i := range 12 {
		if i > 0 && i%3 == 0 {
			do(t, h, host.Action{Name: host.ActReplug})
		}
		out, _ := do(t, h, signIn("0000"))
		last = out.String()
		if last == "error pin-blocked" {
			break
		}
	}
	require.Equal(t, "error pin-blocked", last)
	out, _ := do(t, h, signIn("1234"))
	require.Equal(t, "error pin-blocked", out.String(), "the right PIN no longer helps")
}

func TestNoHMACSecretPersonaFailsRegistration(t *testing.T) {
	t.Parallel()
	k := newKey(t, "no-hmac-secret")
	h := newHost(t, goodConfig(), k)
	m := k.mark()
	out, notes := do(t, h, host.Action{Name: host.ActRegister, Account: "alice@contoso.com", PIN: "1234"})
	require.Equal(t, "error no-hmac-secret", out.String(), out.Reason)
	require.Contains(t, strings.Join(notes, "\n"), "hmac-secret=false")
	require.NotContains(t, k.commands(m), "authenticatorMakeCredential")
}

func TestKeyRequirementsFromGetInfo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ persona, want string }{
		{"base: default\nname: no-rk\nresidentKeys: false\n", "error no-resident-keys"},
		{"base: default\nname: no-uv\nclientPin: false\nbuiltInUv: false\nbioEnrollPreview: false\npinUvAuthToken: false\ncredMgmt: false\ncredMgmtPreview: false\nlargeBlobs: false\nauthnrCfg: false\n", "error no-user-verification"},
		{"u2f", "error no-resident-keys"},
	} {
		k := newKey(t, tc.persona)
		h := newHost(t, goodConfig(), k)
		out, notes := do(t, h, host.Action{Name: host.ActRegister, Account: "alice@contoso.com", PIN: "1234"})
		require.Equal(t, tc.want, out.String(), "%s %v", out.Reason, notes)
	}
}

func TestAAGUIDBlockAfterRegistrationBlocksSignIn(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	do(t, h, host.Action{Name: host.ActBlockAAGUID, Args: map[string]string{"aaguid": "key"}})
	out, _ := do(t, h, signIn("1234"))
	require.Equal(t, "error aaguid-blocked", out.String(), out.Reason)
	do(t, h, host.Action{Name: host.ActAllowAAGUID, Args: map[string]string{"aaguid": "key"}})
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
}

func TestAAGUIDRestrictionAtRegistration(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	cfg := goodConfig()
	cfg.Tenant.AAGUIDAllow = []string{"00000000-0000-0000-0000-000000000001"}
	h := newHost(t, cfg, k)
	out, _ := do(t, h, host.Action{Name: host.ActRegister, Account: "bob@contoso.com", PIN: "1234"})
	require.Equal(t, "error aaguid-blocked", out.String(), out.Reason)
	do(t, h, host.Action{Name: host.ActAllowAAGUID, Args: map[string]string{"aaguid": "key"}})
	register(t, h, "bob@contoso.com")
	do(t, h, host.Action{Name: host.ActBlockAAGUID, Args: map[string]string{"aaguid": "key"}})
	out, _ = do(t, h, host.Action{Name: host.ActRegister, Account: "carol@contoso.com", PIN: "1234"})
	require.Equal(t, "error aaguid-blocked", out.String(), out.Reason)
}

func TestRemovedKeyIsRevoked(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	out, _ := do(t, h, host.Action{Name: host.ActRemoveKey, Account: "alice@contoso.com"})
	require.Equal(t, "done", out.String(), out.Reason)
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "error credential-revoked", out.String(), out.Reason)
}

func TestAttestationEnforcement(t *testing.T) {
	t.Parallel()
	cfg := goodConfig()
	cfg.Tenant.EnforceAttestation = true
	k := newKey(t, "")
	h := newHost(t, cfg, k) // emuKey reports its root: trusted
	register(t, h, "alice@contoso.com")

	k2 := newKey(t, "base: default\nname: self\nattestation: packed-self\n")
	h2 := newHost(t, cfg, k2)
	out, _ := do(t, h2, host.Action{Name: host.ActRegister, Account: "alice@contoso.com", PIN: "1234"})
	require.Equal(t, "error attestation-rejected", out.String(), out.Reason)

	// A root the tenant does not trust: a second key's CA.
	hostile, err := New(WithTrustedRoots(k.AttestationRoots()...)).NewHost(testCtx(t), cfg, untrusted{newKey(t, "")})
	require.NoError(t, err)
	out, _, err = hostile.Do(testCtx(t), host.Action{Name: host.ActRegister, Account: "bob@contoso.com", PIN: "1234"})
	require.NoError(t, err)
	require.Equal(t, "error attestation-rejected", out.String(), out.Reason)
}

// untrusted hides a key's root from the model.
type untrusted struct{ k *emuKey }

func (u untrusted) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	return u.k.Client(ctx, o)
}
func (u untrusted) Replug(ctx context.Context) error { return u.k.Replug(ctx) }
func (u untrusted) Describe() string                 { return "untrusted" }

func TestReset(t *testing.T) {
	t.Parallel()
	k := newKey(t, "base: default\nname: short-reset\nquirks: {resetWindowSeconds: 1}\n")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	do(t, h, host.Action{Name: host.ActWait, Args: map[string]string{"seconds": "2"}})
	out, _ := do(t, h, host.Action{Name: host.ActResetKey})
	require.Equal(t, "error reset-not-allowed", out.String(), out.Reason)
	do(t, h, host.Action{Name: host.ActReplug})
	out, _ = do(t, h, host.Action{Name: host.ActResetKey})
	require.Equal(t, "done", out.String(), out.Reason)
	out, _ = do(t, h, signIn("1234"))
	require.Equal(t, "error pin-required", out.String(), "a reset key has no PIN: %s", out.Reason)
}

func TestManage(t *testing.T) {
	t.Parallel()
	k := newKey(t, "")
	h := newHost(t, goodConfig(), k)
	register(t, h, "alice@contoso.com")
	out, _ := do(t, h, host.Action{Name: host.ActChangePIN, PIN: "1234", NewPIN: "5678"})
	require.Equal(t, "done", out.String(), out.Reason)
	out, _ = do(t, h, signIn("5678"))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
	out, _ = do(t, h, host.Action{Name: host.ActEnrollFingerprint, PIN: "5678", Args: map[string]string{"name": "thumb"}})
	require.Equal(t, "done", out.String(), out.Reason)
	out, notes := do(t, h, signIn(""))
	require.Equal(t, "signed-in as alice@contoso.com", out.String(), out.Reason)
	require.Contains(t, strings.Join(notes, "\n"), "built in")

	k2 := newKey(t, "no-hmac-secret")
	h2 := newHost(t, goodConfig(), k2)
	out, _ = do(t, h2, host.Action{Name: host.ActEnrollFingerprint, PIN: "1234"})
	require.Equal(t, "not-offered unsupported-scenario", out.String())
}
