package authenticator

import (
	"bytes"
	"crypto/sha256"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/stretchr/testify/require"
)

var pinProtocols = []int{1, 2}

// pinRetriesNow reads getPINRetries over the wire.
func (k *testKey) pinRetriesNow() (int, bool) {
	k.t.Helper()
	var resp ctap.ClientPINResponse
	k.must(ctap.CmdClientPIN, &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)}, &resp)
	require.NotNil(k.t, resp.PINRetries)
	pc := false
	if resp.PowerCycleState != nil {
		pc = *resp.PowerCycleState
	}
	return int(*resp.PINRetries), pc
}

// pinKeyAgreementNow returns the raw COSE key getKeyAgreement answers with.
func (k *testKey) pinKeyAgreementNow(v int) []byte {
	k.t.Helper()
	var resp ctap.ClientPINResponse
	k.must(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)}, &resp)
	require.NotEmpty(k.t, resp.KeyAgreement)
	return resp.KeyAgreement
}

// pinSetRaw sends setPIN with an arbitrary padded plaintext, after mutate edits the request.
func (k *testKey) pinSetRaw(v int, padded []byte, mutate func(*ctap.ClientPINRequest)) ctap.Status {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	enc, err := p.Encrypt(shared, padded)
	require.NoError(k.t, err)
	req := &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINSetPIN),
		KeyAgreement: rawCOSE(k.t, pk), NewPinEnc: enc, PinUvAuthParam: p.Authenticate(shared, enc),
	}
	if mutate != nil {
		mutate(req)
	}
	st, _ := k.call(ctap.CmdClientPIN, req)
	return st
}

// pinChange sends changePIN; mutate may edit the request (and sees the shared secret).
func (k *testKey) pinChange(v int, cur, next string, mutate func(*ctap.ClientPINRequest, pinuv.Protocol, []byte)) ctap.Status {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	padded := make([]byte, 64)
	copy(padded, next)
	newEnc, err := p.Encrypt(shared, padded)
	require.NoError(k.t, err)
	h := sha256.Sum256([]byte(cur))
	hashEnc, err := p.Encrypt(shared, h[:16])
	require.NoError(k.t, err)
	req := &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINChangePIN),
		KeyAgreement: rawCOSE(k.t, pk), NewPinEnc: newEnc, PinHashEnc: hashEnc,
		PinUvAuthParam: p.Authenticate(shared, append(append([]byte{}, newEnc...), hashEnc...)),
	}
	if mutate != nil {
		mutate(req, p, shared)
	}
	st, _ := k.call(ctap.CmdClientPIN, req)
	return st
}

func pinPadded(pin string) []byte {
	b := make([]byte, 64)
	copy(b, pin)
	return b
}

func TestPINSetAndUseBothProtocols(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.False(t, k.PINSet())
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		require.True(t, k.PINSet())
		n, err := k.PINRetries()
		require.NoError(t, err)
		require.Equal(t, 8, n)
		pin, err := k.Store().PIN()
		require.NoError(t, err)
		require.Equal(t, 4, pin.CodePoints)
		require.Equal(t, pinuv.PINHash("1234"), pin.Hash)

		tok := k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Len(t, tok, 32)
		msg := cdh()
		use, err := k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, tok, msg), msg, ctap.PermGetAssertion, "example.com")
		require.NoError(t, err, "protocol %d", v)
		require.True(t, use.UserVerified)
		require.False(t, use.UserPresent, "a PIN token carries no user presence")

		legacy := k.mustToken(v, "1234", 0, "")
		require.NotEqual(t, tok, legacy)
		_, err = k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, tok, msg), msg, ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINAuthInvalid, ctap.StatusOf(err), "a new token replaces the old one")
		_, err = k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, legacy, msg), msg, ctap.PermMakeCredential, "example.com")
		require.NoError(t, err)
	}
}

func TestSetPINErrors(t *testing.T) {
	t.Parallel()
	badPoint := rawCOSE(t, mustPlatformKey(t))
	badPoint[len(badPoint)-1] ^= 1 // y no longer on the curve
	cases := []struct {
		name   string
		pin    []byte
		mutate func(*ctap.ClientPINRequest)
		mods   []func(*persona.Persona)
		want   ctap.Status
	}{
		{"ok 4 digits", pinPadded("1234"), nil, nil, ctap.StatusOK},
		{"ok 63 bytes", pinPadded(strings.Repeat("x", 63)), nil, nil, ctap.StatusOK},
		{"ok 4 code points in 8 bytes", pinPadded("äöüß"), nil, nil, ctap.StatusOK},
		{"3 digits", pinPadded("123"), nil, nil, ctap.ErrPINPolicyViolation},
		{"3 code points in 6 bytes", pinPadded("äöü"), nil, nil, ctap.ErrPINPolicyViolation},
		{"64 bytes without terminator", bytes.Repeat([]byte("y"), 64), nil, nil, ctap.ErrPINPolicyViolation},
		{"not UTF-8", pinPadded("\xff\xfe\xfd\xfc"), nil, nil, ctap.ErrPINPolicyViolation},
		{"zero byte inside", append([]byte("12\x0034"), make([]byte, 59)...), nil, nil, ctap.ErrPINPolicyViolation},
		{"padded to 32 bytes", make32("12345678"), nil, nil, ctap.ErrInvalidParameter},
		{"persona minimum 6", pinPadded("12345"), nil, []func(*persona.Persona){func(p *persona.Persona) { p.MinPINLength = 6 }}, ctap.ErrPINPolicyViolation},
		{"missing protocol", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.PinUvAuthProtocol = nil }, nil, ctap.ErrMissingParameter},
		{"missing keyAgreement", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.KeyAgreement = nil }, nil, ctap.ErrMissingParameter},
		{"missing pinUvAuthParam", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.PinUvAuthParam = nil }, nil, ctap.ErrMissingParameter},
		{"missing newPinEnc", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.NewPinEnc = nil }, nil, ctap.ErrMissingParameter},
		{"protocol 3", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.PinUvAuthProtocol = ctap.Uint(3) }, nil, ctap.ErrInvalidParameter},
		{"bad pinUvAuthParam", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.PinUvAuthParam[0] ^= 1 }, nil, ctap.ErrPINAuthInvalid},
		{"keyAgreement off the curve", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.KeyAgreement = badPoint }, nil, ctap.ErrInvalidParameter},
		{"keyAgreement not a map", pinPadded("1234"), func(r *ctap.ClientPINRequest) { r.KeyAgreement = []byte{0x01} }, nil, ctap.ErrCBORUnexpectedType},
	}
	for _, c := range cases {
		for _, v := range pinProtocols {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				k := newTestKey(t, "default", c.mods...)
				require.Equal(t, c.want, k.pinSetRaw(v, c.pin, c.mutate), "protocol %d", v)
				require.Equal(t, c.want == ctap.StatusOK, k.PINSet())
			})
		}
	}
}

func TestSetPINUndecryptable(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		p, pk, shared := k.sharedSecret(v)
		enc, err := p.Encrypt(shared, pinPadded("1234"))
		require.NoError(t, err)
		enc = enc[:len(enc)-1] // authenticated, but no longer whole AES blocks
		st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{
			PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINSetPIN),
			KeyAgreement: rawCOSE(t, pk), NewPinEnc: enc, PinUvAuthParam: p.Authenticate(shared, enc),
		})
		require.Equal(t, ctap.ErrPINAuthInvalid, st)
		require.False(t, k.PINSet())
	}
}

// mustPlatformKey makes a fresh platform key-agreement key.
func mustPlatformKey(t *testing.T) cose.Key {
	t.Helper()
	ka, err := pinuv.NewKeyAgreement(nil)
	require.NoError(t, err)
	return ka.PublicCOSE()
}

func make32(s string) []byte {
	b := make([]byte, 32)
	copy(b, s)
	return b
}

func TestSetPINTwice(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	require.Equal(t, ctap.ErrPINAuthInvalid, k.setPIN(2, "5678"), "setPIN never overwrites a PIN")
	k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
}

func TestSetPINHonoursConfiguredMinimum(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.NoError(t, k.Store().PutSettings(store.Settings{MinPINLength: 8}))
	require.Equal(t, ctap.ErrPINPolicyViolation, k.setPIN(1, "1234567"))
	require.Equal(t, ctap.StatusOK, k.setPIN(1, "12345678"))
}

func TestChangePIN(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		old := k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.StatusOK, k.pinChange(v, "1234", "98765", nil))
		msg := cdh()
		_, err := k.verifyPinUvAuth(ctap.Uint(uint64(v)), authParam(t, v, old, msg), msg, ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINAuthInvalid, ctap.StatusOf(err), "changePIN ends the token")
		st, _ := k.pinToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINInvalid, st)
		k.mustToken(v, "98765", ctap.PermGetAssertion, "example.com")
		pin, err := k.Store().PIN()
		require.NoError(t, err)
		require.Equal(t, 5, pin.CodePoints)
		require.Equal(t, 8, pin.Retries)
	}
}

func TestChangePINErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		setFirst    bool
		cur, next   string
		mutate      func(*ctap.ClientPINRequest, pinuv.Protocol, []byte)
		want        ctap.Status
		wantRetries int
	}{
		{"no PIN", false, "1234", "5678", nil, ctap.ErrPINNotSet, 8},
		{"wrong current PIN", true, "0000", "5678", nil, ctap.ErrPINInvalid, 7},
		{"bad pinUvAuthParam costs nothing", true, "0000", "5678", func(r *ctap.ClientPINRequest, _ pinuv.Protocol, _ []byte) { r.PinUvAuthParam[1] ^= 1 }, ctap.ErrPINAuthInvalid, 8},
		{"new PIN too short", true, "1234", "567", nil, ctap.ErrPINPolicyViolation, 8},
		// §6.5.5.6 steps 6-7: the retry is spent before decrypting; a decryption error is a mismatch.
		{"pinHashEnc not a 16-byte hash costs a retry", true, "1234", "5678", func(r *ctap.ClientPINRequest, p pinuv.Protocol, s []byte) {
			r.PinHashEnc = append(append([]byte{}, r.PinHashEnc...), r.PinHashEnc...)
			r.PinUvAuthParam = p.Authenticate(s, append(append([]byte{}, r.NewPinEnc...), r.PinHashEnc...))
		}, ctap.ErrPINInvalid, 7},
		{"missing pinHashEnc", true, "1234", "5678", func(r *ctap.ClientPINRequest, _ pinuv.Protocol, _ []byte) { r.PinHashEnc = nil }, ctap.ErrMissingParameter, 8},
		{"missing newPinEnc", true, "1234", "5678", func(r *ctap.ClientPINRequest, _ pinuv.Protocol, _ []byte) { r.NewPinEnc = nil }, ctap.ErrMissingParameter, 8},
		{"newPinEnc padded to 32", true, "1234", "5678", func(r *ctap.ClientPINRequest, p pinuv.Protocol, s []byte) {
			enc, _ := p.Encrypt(s, make32("5678"))
			r.NewPinEnc = enc
			r.PinUvAuthParam = p.Authenticate(s, append(append([]byte{}, enc...), r.PinHashEnc...))
		}, ctap.ErrInvalidParameter, 8},
	}
	for _, c := range cases {
		for _, v := range pinProtocols {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				k := newTestKey(t, "default")
				if c.setFirst {
					require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
				}
				require.Equal(t, c.want, k.pinChange(v, c.cur, c.next, c.mutate))
				n, err := k.PINRetries()
				require.NoError(t, err)
				require.Equal(t, c.wantRetries, n)
				if c.setFirst && c.want != ctap.StatusOK {
					k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com") // the old PIN still holds
				}
			})
		}
	}
}

// pinFileKey opens (or reopens) a key whose state lives in the file at path.
func pinFileKey(t *testing.T, path string) (*testKey, func()) {
	t.Helper()
	st, err := store.OpenFile(path)
	require.NoError(t, err)
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	c := clock.NewVirtual(epoch)
	sw := user.NewSwitch(user.Always)
	a, err := New(Config{Persona: p, Store: st, User: sw, Clock: c})
	require.NoError(t, err)
	return &testKey{Authenticator: a, t: t, clock: c, user: sw}, func() { _ = a.Close(); _ = st.Close() }
}

func TestPINRetriesPersistAcrossRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.db")
	k, closeKey := pinFileKey(t, path)
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	st, _ := k.pinToken(2, "9999", ctap.PermGetAssertion, "example.com")
	require.Equal(t, ctap.ErrPINInvalid, st)
	st, _ = k.pinToken(1, "9999", 0, "")
	require.Equal(t, ctap.ErrPINInvalid, st)
	closeKey()

	k, closeKey = pinFileKey(t, path)
	defer closeKey()
	n, err := k.PINRetries()
	require.NoError(t, err)
	require.Equal(t, 6, n, "two wrong PINs survive the restart")
	got, pc := k.pinRetriesNow()
	require.Equal(t, 6, got)
	require.False(t, pc, "a restart is a power cycle")
	k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
	n, err = k.PINRetries()
	require.NoError(t, err)
	require.Equal(t, 8, n)
}

func TestPINLockout(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		wrong := func() ctap.Status {
			st, _ := k.pinToken(v, "0000", ctap.PermGetAssertion, "example.com")
			return st
		}
		require.Equal(t, ctap.ErrPINInvalid, wrong())
		require.Equal(t, ctap.ErrPINInvalid, wrong())
		require.Equal(t, ctap.ErrPINAuthBlocked, wrong())
		st, _ := k.pinToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINAuthBlocked, st, "even the right PIN waits for a power cycle")
		n, pc := k.pinRetriesNow()
		require.Equal(t, 5, n, "blocked attempts cost nothing")
		require.True(t, pc)

		require.NoError(t, k.PowerCycle())
		_, pc = k.pinRetriesNow()
		require.False(t, pc)
		k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com")
		n, _ = k.pinRetriesNow()
		require.Equal(t, 8, n)

		// Eight wrong PINs in a row, power cycling whenever the key asks for it.
		var last ctap.Status
		for i := 0; i < 8; i++ {
			if last == ctap.ErrPINAuthBlocked {
				require.NoError(t, k.PowerCycle())
			}
			last = wrong()
			n, _ = k.pinRetriesNow()
			require.Equal(t, 7-i, n)
		}
		require.Equal(t, ctap.ErrPINBlocked, last)
		require.NoError(t, k.PowerCycle())
		st, _ = k.pinToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINBlocked, st, "blocked for good")
		require.Equal(t, ctap.ErrPINBlocked, k.pinChange(v, "1234", "5678", nil))
		n, _ = k.pinRetriesNow()
		require.Equal(t, 0, n)
	}
}

func TestMismatchRegeneratesKeyAgreement(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		before := k.pinKeyAgreementNow(v)
		k.mustToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, before, k.pinKeyAgreementNow(v), "a correct PIN keeps the key")
		st, _ := k.pinToken(v, "0000", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINInvalid, st)
		require.NotEqual(t, before, k.pinKeyAgreementNow(v), "a mismatch makes a new key")
	}
}

// pinHashEncRaw sends getPinToken with an arbitrary pinHashEnc plaintext.
func (k *testKey) pinHashEncRaw(v int, plain []byte) ctap.Status {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	enc, err := p.Encrypt(shared, plain)
	require.NoError(k.t, err)
	st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)),
		SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: rawCOSE(k.t, pk), PinHashEnc: enc})
	return st
}

// TestMalformedPinHashEncCostsARetry: the retry is spent before pinHashEnc is decrypted, and "If
// an error results, or a mismatch is detected" it is a failed attempt (§6.5.5.7.1 steps 8-9).
func TestMalformedPinHashEncCostsARetry(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		before := k.pinKeyAgreementNow(v)
		require.Equal(t, ctap.ErrPINInvalid, k.pinHashEncRaw(v, make([]byte, 32)))
		n, _ := k.pinRetriesNow()
		require.Equal(t, 7, n)
		require.NotEqual(t, before, k.pinKeyAgreementNow(v))
		h := sha256.Sum256([]byte("1234"))
		require.Equal(t, ctap.StatusOK, k.pinHashEncRaw(v, h[:16]))
	}
}

func TestForcePINChange(t *testing.T) {
	t.Parallel()
	for _, v := range pinProtocols {
		k := newTestKey(t, "default")
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		tok := k.mustToken(v, "1234", ctap.PermAuthenticatorConfig, "")
		require.Equal(t, ctap.StatusOK, k.config(v, tok, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{NewMinPINLength: ctap.Uint(6)}))
		pin, err := k.Store().PIN()
		require.NoError(t, err)
		require.True(t, pin.ForceChange, "the PIN is now shorter than the minimum")
		require.True(t, *k.info().ForcePINChange)

		st, _ := k.pinToken(v, "1234", ctap.PermGetAssertion, "example.com")
		require.Equal(t, ctap.ErrPINPolicyViolation, st)
		st, _ = k.pinToken(v, "1234", 0, "")
		require.Equal(t, ctap.ErrPINInvalid, st, "getPinToken answers PIN_INVALID (§6.5.5.7.1 step 11)")
		n, _ := k.pinRetriesNow()
		require.Equal(t, 8, n, "the PIN was right: retries reset")

		require.Equal(t, ctap.ErrPINPolicyViolation, k.pinChange(v, "1234", "12345", nil), "below the new minimum")
		require.NoError(t, k.Store().PutPIN(pin))
		require.Equal(t, ctap.StatusOK, k.pinChange(v, "1234", "123456", nil))
		pin, err = k.Store().PIN()
		require.NoError(t, err)
		require.False(t, pin.ForceChange)
		k.mustToken(v, "123456", ctap.PermGetAssertion, "example.com")
	}
}

func TestForcePINChangeRefusesSamePIN(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "123456"))
	tok := k.mustToken(2, "123456", ctap.PermAuthenticatorConfig, "")
	require.Equal(t, ctap.StatusOK, k.config(2, tok, ctap.ConfigSetMinPINLength, &ctap.SetMinPINLengthParams{ForceChangePIN: ctap.Bool(true)}))
	require.Equal(t, ctap.ErrPINPolicyViolation, k.pinChange(2, "123456", "123456", nil))
	require.Equal(t, ctap.StatusOK, k.pinChange(2, "123456", "654321", nil))
	k.mustToken(2, "654321", ctap.PermMakeCredential, "example.com")
}
