package authenticator

import (
	"context"
	"crypto/sha256"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// Each test here checks one CTAP 2.2 feature of the ctap22 persona against what the CTAP 2.2
// Proposed Standard (2025-02-28) says, by section; and that personas without the feature show
// none of it.

const ctap22PIN = "fidolab-22-pin"

// TestCTAP22GetInfo — CTAP 2.2 §6.4 authenticatorGetInfo: option "perCredMgmtRO" (0x04 options
// map), longTouchForReset (0x18), transportsForReset (0x1A), pinComplexityPolicy (0x1B),
// pinComplexityPolicyURL (0x1C), the "thirdPartyPayment" extension identifier (0x02), and no
// "FIDO_2_2" in versions (CTAP 2.2 defines no version string; CTAP 2.3 §6.4 says a key must not
// send one).
func TestCTAP22GetInfo(t *testing.T) {
	t.Parallel()
	raw := func(k *testKey) map[int]cbor.RawMessage {
		st, body := k.call(ctap.CmdGetInfo, nil)
		require.Equal(t, ctap.StatusOK, st)
		var m map[int]cbor.RawMessage
		require.NoError(t, ctap.Unmarshal(body, &m))
		return m
	}
	k := newTestKey(t, "ctap22", func(p *persona.Persona) { p.PinComplexityPolicyURL = "https://example.com/pin" })
	gi := k.info()
	require.NotContains(t, gi.Versions, "FIDO_2_2")
	require.Contains(t, gi.Versions, ctap.VersionFIDO21)
	require.True(t, gi.HasExtension("thirdPartyPayment"))
	v, ok := gi.Option("perCredMgmtRO")
	require.True(t, ok && v)
	m := raw(k)
	require.Equal(t, cbor.RawMessage{0xf5}, m[0x18], "longTouchForReset: true")
	require.Equal(t, mustCBOR(t, []string{"usb"}), []byte(m[0x1a]), "transportsForReset: [usb]")
	require.Equal(t, cbor.RawMessage{0xf5}, m[0x1b], "pinComplexityPolicy: true")
	require.Equal(t, mustCBOR(t, []byte("https://example.com/pin")), []byte(m[0x1c]), "pinComplexityPolicyURL is a byte string")
	for _, name := range []string{"default", "ctap20", "no-hmac-secret"} {
		d := newTestKey(t, name)
		m := raw(d)
		for _, key := range []int{0x18, 0x1a, 0x1b, 0x1c} {
			require.NotContains(t, m, key, "%s: member 0x%x", name, key)
		}
		_, ok := d.info().Option("perCredMgmtRO")
		require.False(t, ok, name)
		require.False(t, d.info().HasExtension("thirdPartyPayment"), name)
	}
}

func mustCBOR(t *testing.T, v any) []byte {
	t.Helper()
	b, err := ctap.Marshal(v)
	require.NoError(t, err)
	return b
}

// changePIN runs clientPIN changePIN with protocol 2.
func (k *testKey) changePIN(oldPIN, newPIN string) ctap.Status {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(2)
	padded, err := pinuv.PadPIN(newPIN)
	require.NoError(k.t, err)
	newEnc, err := p.Encrypt(shared, padded)
	require.NoError(k.t, err)
	h := sha256.Sum256([]byte(oldPIN))
	hashEnc, err := p.Encrypt(shared, h[:16])
	require.NoError(k.t, err)
	msg := append(append([]byte{}, newEnc...), hashEnc...)
	st, _ := k.call(ctap.CmdClientPIN, &ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINChangePIN),
		KeyAgreement: rawCOSE(k.t, pk), NewPinEnc: newEnc, PinHashEnc: hashEnc, PinUvAuthParam: p.Authenticate(shared, msg)})
	return st
}

// TestCTAP22PersistentToken — CTAP 2.2 §6.5.5.7 (permission pcmr = 0x40) and §6.8
// (authenticatorCredentialManagement with a persistent pinUvAuthToken): a pcmr token is asked for
// alone, lets the read-only subcommands through (getCredsMetadata, enumerateRPs…, enumerate
// Credentials…), never update or delete (CTAP2_ERR_PIN_AUTH_INVALID), nothing outside credential
// management, survives power cycles, and is invalidated by changePIN (§6.5.5.6) and
// authenticatorReset (§6.6). The scenario is python-fido2 2.x's test_read_only_management.
func TestCTAP22PersistentToken(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "ctap22")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
	c := k.coreMake(withUV(k, makeCredReq("pcmr.example", []byte("alice"), true)))

	st, _ := k.pinToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO|ctap.PermCredentialManagement, "")
	require.Equal(t, ctap.ErrUnauthorizedPermission, st, "pcmr with another permission")
	ppuat := k.mustToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO, "")
	require.Len(t, ppuat, 32)

	readOnly := func(tok []byte, what string) {
		t.Helper()
		meta := k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
		require.Equal(t, uint64(1), *meta.ExistingResidentCredentialsCount, what)
		require.Equal(t, []string{"pcmr.example"}, k.mgmtEnumerateRPs(ctap.CmdCredentialManagement, tok), what)
		creds := k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "pcmr.example")
		require.Len(t, creds, 1, what)
		require.Equal(t, c.id, []byte(creds[0].CredentialID.ID))
	}
	refusesWrites := func(tok []byte, what string) {
		t.Helper()
		id := &ctap.CredentialManagementParams{CredentialID: &ctap.CredentialDescriptor{ID: c.id, Type: ctap.CredentialTypePublicKey}}
		st, _ := k.cm(ctap.CmdCredentialManagement, tok, ctap.CMDeleteCredential, id)
		require.Equal(t, ctap.ErrPINAuthInvalid, st, what)
		upd := *id
		upd.User = &ctap.UserEntity{ID: []byte("alice"), Name: "mallory"}
		st, _ = k.cm(ctap.CmdCredentialManagement, tok, ctap.CMUpdateUserInformation, &upd)
		require.Equal(t, ctap.ErrPINAuthInvalid, st, what)
		n, err := k.Store().CountResident()
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	readOnly(ppuat, "fresh")
	refusesWrites(ppuat, "fresh")

	// Not a token for anything else.
	mc := makeCredReq("pcmr.example", []byte("bob"), true)
	mc.PinUvAuthProtocol, mc.PinUvAuthParam = ctap.Uint(2), authParam(t, 2, ppuat, mc.ClientDataHash)
	st, _ = k.call(ctap.CmdMakeCredential, mc)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)

	// Across power cycles, and unaffected by an ordinary token.
	require.NoError(t, k.PowerCycle())
	readOnly(ppuat, "after a power cycle")
	cm := k.mustToken(2, ctap22PIN, ctap.PermCredentialManagement, "")
	readOnly(ppuat, "after an ordinary token was issued")
	readOnly(cm, "the ordinary token")
	require.NoError(t, k.PowerCycle())
	st, _ = k.cm(ctap.CmdCredentialManagement, cm, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrPINAuthInvalid, st, "an ordinary token does not survive a power cycle")
	require.Equal(t, ppuat, k.mustToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO, ""), "asked again: the same token")

	// changePIN invalidates it; a new one works.
	require.Equal(t, ctap.StatusOK, k.changePIN(ctap22PIN, ctap22PIN+"-2"))
	st, _ = k.cm(ctap.CmdCredentialManagement, ppuat, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrPINAuthInvalid, st, "after changePIN")
	fresh := k.mustToken(2, ctap22PIN+"-2", ctap.PermPersistentCredMgmtRO, "")
	require.NotEqual(t, ppuat, fresh)
	readOnly(fresh, "new token after changePIN")
	// Changing back to the first PIN does not bring the first token back.
	require.Equal(t, ctap.StatusOK, k.changePIN(ctap22PIN+"-2", ctap22PIN))
	for _, tok := range [][]byte{ppuat, fresh} {
		st, _ = k.cm(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
		require.Equal(t, ctap.ErrPINAuthInvalid, st, "after changing the PIN back")
	}
	fresh = k.mustToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO, "")

	// authenticatorReset invalidates it.
	require.NoError(t, k.PowerCycle())
	st, _ = k.call(ctap.CmdReset, nil)
	require.Equal(t, ctap.StatusOK, st)
	require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
	st, _ = k.cm(ctap.CmdCredentialManagement, fresh, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrPINAuthInvalid, st, "after authenticatorReset with the same PIN set again")
}

// withUV adds a pinUvAuthParam from a fresh mc token to req (the key has a PIN).
func withUV(k *testKey, req *ctap.MakeCredentialRequest) *ctap.MakeCredentialRequest {
	tok := k.mustToken(2, ctap22PIN, ctap.PermMakeCredential, req.RP.ID)
	req.PinUvAuthProtocol, req.PinUvAuthParam = ctap.Uint(2), authParam(k.t, 2, tok, req.ClientDataHash)
	return req
}

// TestCTAP22PersistentTokenSurvivesRestart: "persistent" holds across the process too — a key
// reopened from its state file still takes the token (the state holds no token, only a nonce).
func TestCTAP22PersistentTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.state")
	open := func() (*testKey, func()) {
		st, err := store.OpenFile(path)
		require.NoError(t, err)
		p, err := persona.Builtin("ctap22")
		require.NoError(t, err)
		a, err := New(Config{Persona: p, Store: st})
		require.NoError(t, err)
		return &testKey{Authenticator: a, t: t}, func() { _ = a.Close(); _ = st.Close() }
	}
	k, done := open()
	require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
	tok := k.mustToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO, "")
	k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
	done()
	k, done = open()
	defer done()
	k.mustCM(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
}

// TestPersistentPermissionWithoutTheFeature: on a persona without perCredMgmtRO the 0x40 bit is
// not a permission it defines, and undefined bits are ignored (CTAP 2.1 §6.5.5.7): the token that
// results carries nothing and credential management refuses it.
func TestPersistentPermissionWithoutTheFeature(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
	tok := k.mustToken(2, ctap22PIN, ctap.PermPersistentCredMgmtRO, "")
	st, _ := k.cm(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)
	require.NoError(t, k.PowerCycle())
	st, _ = k.cm(ctap.CmdCredentialManagement, tok, ctap.CMGetCredsMetadata, nil)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)
}

// TestCTAP22ThirdPartyPayment — CTAP 2.2 thirdPartyPayment extension (#sctn-thirdPartyPayment-
// extension): makeCredential input true marks the credential; getAssertion input true answers
// the mark (true or false) in the authenticator data's extensions; credential management
// answers it as member 0x0C (§6.8). Without the input there is no output; a persona without the
// extension ignores it.
func TestCTAP22ThirdPartyPayment(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"ctap22", "default"} {
		k := newTestKey(t, name)
		supported := name == "ctap22"
		paying := makeCredReq("shop.example", []byte("payer"), true)
		paying.Extensions = &ctap.MakeCredentialExtensions{ThirdPartyPayment: ctap.Bool(true)}
		pay := k.coreMake(paying)
		require.Nil(t, pay.ad.Extensions, "%s: no makeCredential output", name)
		plain := k.coreMake(makeCredReq("shop.example", []byte("plain"), false))

		for _, tc := range []struct {
			id   []byte
			ask  bool
			want any // nil: no output
		}{
			{pay.id, true, true}, {plain.id, true, false}, {pay.id, false, nil},
		} {
			req := gaReq("shop.example", tc.id)
			if tc.ask {
				req.Extensions = &ctap.GetAssertionExtensions{ThirdPartyPayment: ctap.Bool(true)}
			}
			_, ad := k.coreAssert(req, nil)
			if !supported || tc.want == nil {
				require.Empty(t, ad.Extensions, "%s ask=%v", name, tc.ask)
				continue
			}
			var ext map[string]any
			require.NoError(t, cbor.Unmarshal(ad.Extensions, &ext))
			require.Equal(t, map[string]any{"thirdPartyPayment": tc.want}, ext)
		}

		require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
		tok := k.mustToken(2, ctap22PIN, ctap.PermCredentialManagement, "")
		creds := k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "shop.example")
		require.Len(t, creds, 1)
		if supported {
			require.Equal(t, ctap.Bool(true), creds[0].ThirdPartyPayment)
		} else {
			require.Nil(t, creds[0].ThirdPartyPayment)
		}
	}
}

// TestCTAP22LongTouchForReset — CTAP 2.2 §6.4 longTouchForReset: reset needs the key held, not a
// tap. The simulated user holds it for longTouch on the key's clock while the host sees
// keepalives; a CANCEL during the hold ends the reset with nothing wiped.
func TestCTAP22LongTouchForReset(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		hold time.Duration
	}{{"ctap22", longTouch}, {"default", 0}} {
		k := newTestKey(t, tc.name)
		k.coreMake(makeCredReq("wipe.example", []byte("u"), true))
		before := k.clock.Now()
		st, _ := k.call(ctap.CmdReset, nil)
		require.Equal(t, ctap.StatusOK, st)
		require.Equal(t, tc.hold, k.clock.Now().Sub(before), tc.name)
		n, err := k.Store().CountResident()
		require.NoError(t, err)
		require.Zero(t, n)
	}
	k := newTestKey(t, "ctap22")
	k.coreMake(makeCredReq("keep.example", []byte("u"), true))
	ctx, cancel := context.WithCancel(context.Background())
	k.clock.AfterFunc(2*time.Second, cancel) // the host cancels while the user holds the key
	var waiting []byte
	st := ctap.Status(k.HandleCBOR(ctx, []byte{byte(ctap.CmdReset)}, func(s byte) { waiting = append(waiting, s) })[0])
	require.Equal(t, ctap.ErrKeepaliveCancel, st)
	require.Contains(t, waiting, byte(2), "UPNEEDED while held") // ctaphid.StatusUPNeeded
	n, err := k.Store().CountResident()
	require.NoError(t, err)
	require.Equal(t, 1, n, "a cancelled reset wipes nothing")
}

// TestCTAP22PinComplexity — CTAP 2.2 §6.4 pinComplexityPolicy (0x1B): the key enforces a PIN
// complexity policy at setPIN and changePIN (§6.5.5.5, §6.5.5.6: CTAP2_ERR_PIN_POLICY_VIOLATION).
func TestCTAP22PinComplexity(t *testing.T) {
	t.Parallel()
	trivial := []string{"11111111", "aaaa", "123456", "12345678", "87654321", "abcdef", "password", "PassW0rd", "123123", "qwerty"}
	k := newTestKey(t, "ctap22")
	for _, pin := range trivial {
		require.Equal(t, ctap.ErrPINPolicyViolation, k.setPIN(2, pin), pin)
	}
	require.False(t, k.PINSet())
	require.Equal(t, ctap.StatusOK, k.setPIN(2, ctap22PIN))
	for _, pin := range trivial {
		require.Equal(t, ctap.ErrPINPolicyViolation, k.changePIN(ctap22PIN, pin), pin)
	}
	require.Equal(t, ctap.StatusOK, k.changePIN(ctap22PIN, "24681357"))

	d := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, d.setPIN(2, "123456"), "no policy on a persona without it")
}

func TestTrivialPIN(t *testing.T) {
	t.Parallel()
	for pin, want := range map[string]string{
		"0000": "one character repeated", "ääää": "one character repeated", "1234": "a sequence",
		"9876": "a sequence", "abcd": "a sequence", "iloveyou": "a commonly used PIN",
		"1235": "", "fidolab": "", "24681357": "", "aab": "", "Ünïcödé-1": "",
	} {
		require.Equal(t, want, trivialPIN([]byte(pin)), pin)
	}
}
