package replay

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

// TestReplayWindowsSignIn replays the LogonUI sign-in imported from an event log against the
// persona it was recorded with: the fresh key is set up with the PIN and alice's credential, the
// PIN token, hmac-secret and pinUvAuthParam are re-derived, and every answer matches, with the
// token decrypted, the hmac-secret output decrypted and the signature verified.
func TestReplayWindowsSignIn(t *testing.T) {
	t.Parallel()
	res := replayOn(t, importFixture(t, "logonui-signin.xml"), builtin(t, "default"), Options{})
	out := text(res)
	require.True(t, res.OK(), out)
	require.Equal(t, 5, res.Same, out)
	require.Equal(t, 2, res.Rederived, out)
	require.Contains(t, out, "set-up: made 1 credential(s) for login.microsoft.com")
	require.Contains(t, out, "set-up: PIN set")
	require.Contains(t, out, "re-derived: keyAgreement (the replay's own), pinHashEnc from the PIN")
	require.Contains(t, out, "re-derived: pinUvAuthParam with the token of step #3")
	require.Contains(t, out, "✓ pinUvAuthToken decrypted")
	require.Contains(t, out, "✓ hmac-secret output decrypted")
	require.Contains(t, out, "✓ signature verified with the credential's public key")
}

// TestReplayBrowserRegistration: a registration's attestation is verified and its credential
// mapped; the failed sign-in with a foreign credential fails the same way.
func TestReplayBrowserRegistration(t *testing.T) {
	t.Parallel()
	res := replayOn(t, importFixture(t, "browser-registration.xml"), builtin(t, "default"), Options{})
	out := text(res)
	require.True(t, res.OK(), out)
	require.Contains(t, out, "✓ attestation verified (packed)")
	require.Contains(t, out, "CTAP2_ERR_NO_CREDENTIALS  same")
}

// TestReplayRunTrace replays what fidolab run --trace recorded of cases that replug the key, block
// and unblock the PIN, type wrong PINs, change the PIN, enroll a fingerprint (template IDs mapped),
// reset and sign in with several accounts: every step answers as recorded.
func TestReplayRunTrace(t *testing.T) {
	t.Parallel()
	b := runTrace(t, "re:^(manage-reset$|user-pin-auth-blocked|user-wrong-pin|manage-change-pin$|manage-enroll-fingerprint|multi-account-order|offline-after) windows:11-24H2", nil)
	res := replayOn(t, b, builtin(t, "default"), Options{})
	out := text(res)
	require.True(t, res.OK(), out)
	require.Zero(t, res.NotReplayable, out)
	require.Greater(t, res.Same, 100, out)
	require.Contains(t, out, "replug (power-up)  ")
	require.Contains(t, out, "a wrong PIN, as the recorded attempt failed with CTAP2_ERR_PIN_INVALID")
	require.Contains(t, out, "templateId mapped to this key's")
	require.Contains(t, out, "changePIN")
}

// TestReplayShowsTheFirstDifference: the same trace against a CTAP 2.0 persona differs first in
// getInfo, and what depends on PIN protocol 2 is not replayable.
func TestReplayShowsTheFirstDifference(t *testing.T) {
	t.Parallel()
	res := replayOn(t, importFixture(t, "logonui-signin.xml"), builtin(t, "ctap20"), Options{})
	require.False(t, res.OK())
	first := res.FirstDifference()
	require.NotNil(t, first)
	require.Equal(t, 1, first.Index)
	require.Equal(t, "versions", first.Diffs[0].Field)
	var buf bytes.Buffer
	require.NoError(t, WriteText(&buf, res, TextOptions{}))
	require.Contains(t, buf.String(), `FIRST DIFFERENCE #1 [src 1 #1, trace line 6] authenticatorGetInfo: versions: recorded ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1"], replayed ["U2F_V2", "FIDO_2_0"]`)
	require.Equal(t, 1, strings.Count(buf.String(), "≠ versions"), "only the first difference without --all")
	buf.Reset()
	require.NoError(t, WriteText(&buf, res, TextOptions{All: true}))
	require.Contains(t, buf.String(), "≠ status: recorded CTAP2_OK, replayed CTAP1_ERR_INVALID_PARAMETER")
	buf.Reset()
	require.NoError(t, WriteJSON(&buf, res))
	require.Contains(t, buf.String(), `"ok": false`)
}

// preparedKey is a key that is not fresh: it has the PIN 1234 and a credential for the user of
// the LogonUI fixture, as a user's own key would.
func preparedKey(t *testing.T) *keyconn.Emulated {
	t.Helper()
	k, err := keyconn.NewEmulated(builtin(t, "default"), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	ctx := context.Background()
	c, _, _, conn, err := keyconn.Client(ctx, k)
	require.NoError(t, err)
	defer conn.Close()
	p := mustPlan(t, importFixture(t, "logonui-signin.xml"))
	s := newSession()
	_, err = s.setUp(ctx, c, p.Groups[0].Preconditions(), "1234")
	require.NoError(t, err)
	return k
}

// TestReplayNeedsThePIN: against a key that is not fresh, the PIN comes only from --pin (no trace
// holds it); without it the token step and the getAssertion that used its token are not
// replayable, each saying why, and nothing counts as a difference.
func TestReplayNeedsThePIN(t *testing.T) {
	t.Parallel()
	b := importFixture(t, "logonui-signin.xml")
	k := preparedKey(t)
	res, err := Run(context.Background(), mustPlan(t, b), One(k), Options{})
	require.NoError(t, err)
	out := text(res)
	require.True(t, res.OK(), out)
	require.Equal(t, 2, res.NotReplayable, out)
	require.Contains(t, out, "it needs the key's PIN, which no trace holds")
	require.Contains(t, out, "its pinUvAuthParam was made with a pinUvAuthToken the replay does not have")

	res, err = Run(context.Background(), mustPlan(t, b), One(k), Options{PIN: "1234"})
	require.NoError(t, err)
	out = text(res)
	require.True(t, res.OK(), out)
	require.Equal(t, 5, res.Same, out)
	require.Contains(t, out, "signature not verified: the credential's public key is unknown")

	res, err = Run(context.Background(), mustPlan(t, b), One(k), Options{PIN: "9999"})
	require.NoError(t, err)
	require.False(t, res.OK())
	require.Equal(t, "CTAP2_ERR_PIN_INVALID", res.FirstDifference().Replayed)
}

// TestReplayWrongPINsNeedDestructive: a recorded failed PIN attempt is replayed with a wrong PIN,
// which costs a real key a retry: only with Destructive on a key that is not fresh.
func TestReplayWrongPINsNeedDestructive(t *testing.T) {
	t.Parallel()
	b := runTrace(t, "re:^user-wrong-pin windows:11-24H2", nil)
	k := preparedKey(t)
	res, err := Run(context.Background(), mustPlan(t, b), One(k), Options{PIN: "1234"})
	require.NoError(t, err)
	require.Contains(t, text(res), "uses up one of this key's PIN retries: --destructive allows it")
	res, err = Run(context.Background(), mustPlan(t, b), One(k), Options{PIN: "1234", Destructive: true})
	require.NoError(t, err)
	require.NotContains(t, text(res), "uses up one of")
	require.Contains(t, text(res), "a wrong PIN, as the recorded attempt failed")
}

// faultTrace records a sign-in on a key that refused the first getAssertion with an error no
// key of its persona would give (a firmware quirk, injected with the failNext knob).
func faultTrace(t *testing.T) []byte {
	t.Helper()
	k, err := keyconn.NewEmulated(builtin(t, "default"), nil)
	require.NoError(t, err)
	defer k.Close()
	var buf bytes.Buffer
	rec, err := trace.NewRecorder(&buf, trace.Options{Tool: "test"})
	require.NoError(t, err)
	ctx := context.Background()
	conn := rec.Conn(k.Key.Connect(), trace.Source{Transport: "inproc"})
	hid := ctaphidClient(t, conn)
	c := client.New(hid)
	_, err = c.GetInfo(ctx)
	require.NoError(t, err)
	cdh := bytes.Repeat([]byte{7}, 32)
	alg := int64(-7)
	mc, err := c.MakeCredential(ctx, &ctap.MakeCredentialRequest{ClientDataHash: cdh, RP: &ctap.RPEntity{ID: "example.org"},
		User: &ctap.UserEntity{ID: []byte("u1"), Name: "u1"}, PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: "public-key"}},
		Options: &ctap.Options{RK: ctap.Bool(true)}})
	require.NoError(t, err)
	_, err = k.Key.UpdateKnobs(func(n *emulator.Knobs) error { n.FailNext = []string{"CTAP2_ERR_OPERATION_DENIED"}; return nil })
	require.NoError(t, err)
	ga := &ctap.GetAssertionRequest{RPID: "example.org", ClientDataHash: cdh}
	_, err = c.GetAssertion(ctx, ga)
	require.ErrorIs(t, err, ctap.ErrOperationDenied)
	_, err = c.GetAssertion(ctx, ga)
	require.NoError(t, err)
	ga.AllowList = []ctap.CredentialDescriptor{{ID: mc.CredentialID, Type: "public-key"}}
	_, err = c.GetAssertion(ctx, ga)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	require.NoError(t, rec.Close())
	return buf.Bytes()
}

// TestAsKeyAnswersAsRecorded: a key served from a trace gives the recorded key's error quirk (the
// first getAssertion refused) where the persona alone would not, and its getInfo verbatim; the
// trace replayed against it matches step for step, and against the bare persona it does not.
func TestAsKeyAnswersAsRecorded(t *testing.T) {
	t.Parallel()
	b := faultTrace(t)
	p := mustPlan(t, b)
	var log []string
	ak, err := NewAsKey(p, AsKeyOptions{Source: "test", Log: func(s string) { log = append(log, s) }})
	require.NoError(t, err)
	require.Equal(t, "6f1a7b3e-0c1d-4e5f-9a8b-f1d0a11ab001", ak.Persona.AAGUID.String())
	k, err := keyconn.NewEmulated(ak.Persona, &keyconn.EmulatedOptions{Intercept: ak.Intercept(nil)})
	require.NoError(t, err)
	defer k.Close()

	res, err := Run(context.Background(), mustPlan(t, b), One(k), Options{})
	require.NoError(t, err)
	require.True(t, res.OK(), text(res))
	joined := strings.Join(log, "\n")
	require.Contains(t, joined, "authenticatorGetAssertion example.org → recorded CTAP2_ERR_OPERATION_DENIED")
	require.Contains(t, joined, "authenticatorGetInfo → recorded CTAP2_OK")
	require.Contains(t, joined, "authenticatorGetAssertion example.org → emulated")

	bare := replayOn(t, b, ak.Persona, Options{})
	require.False(t, bare.OK())
	require.Contains(t, text(bare), "re-derived: allowList credential IDs mapped to this key's")
	require.Equal(t, "CTAP2_ERR_OPERATION_DENIED", bare.FirstDifference().Recorded)
}

// TestAsKeyNeedsOneCase: a run trace holds a key per case; --as-key serves one.
func TestAsKeyNeedsOneCase(t *testing.T) {
	t.Parallel()
	p := mustPlan(t, runTrace(t, "re:^multi-account-lock-screen windows:>=11-23H2", nil))
	_, err := NewAsKey(p, AsKeyOptions{})
	require.ErrorContains(t, err, "choose one with --case")
	require.NoError(t, p.Select("@11-24H2"))
	ak, err := NewAsKey(p, AsKeyOptions{})
	require.NoError(t, err)
	require.False(t, ak.Pre.PIN, "the case's key starts fresh: the runner sets its PIN")
}
