package authenticator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/stretchr/testify/require"
)

// pinFuzzState is the PIN every fuzz iteration starts from.
var pinFuzzState = store.PIN{Set: true, Hash: pinuv.PINHash("1234"), CodePoints: 4, Retries: store.DefaultPINRetries}

// pinFuzzSeeds returns well-formed requests of every clientPIN subcommand for k.
func pinFuzzSeeds(t testing.TB, k *testKey) [][]byte {
	var seeds [][]byte
	add := func(r *ctap.ClientPINRequest) {
		b, err := ctap.Marshal(r)
		require.NoError(t, err)
		seeds = append(seeds, b)
	}
	rp := "example.com"
	for _, v := range pinProtocols {
		p, pk, shared := k.sharedSecret(v)
		ka := rawCOSE(t, pk)
		h := sha256.Sum256([]byte("1234"))
		good, err := p.Encrypt(shared, h[:16])
		require.NoError(t, err)
		bad, err := p.Encrypt(shared, make([]byte, 16))
		require.NoError(t, err)
		newEnc, err := p.Encrypt(shared, pinPadded("56789"))
		require.NoError(t, err)
		pv := ctap.Uint(uint64(v))
		add(&ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)})
		add(&ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetUVRetries)})
		add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)})
		add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINSetPIN), KeyAgreement: ka, NewPinEnc: newEnc, PinUvAuthParam: p.Authenticate(shared, newEnc)})
		for _, enc := range [][]byte{good, bad} {
			add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: ka, PinHashEnc: enc})
			add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms), KeyAgreement: ka, PinHashEnc: enc, Permissions: ctap.Uint(3), RPID: &rp})
			msg := append(append([]byte{}, newEnc...), enc...)
			add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINChangePIN), KeyAgreement: ka, NewPinEnc: newEnc, PinHashEnc: enc, PinUvAuthParam: p.Authenticate(shared, msg)})
		}
		long := append(append([]byte{}, bad...), bad...) // decrypts, but not to a 16-byte hash
		add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINGetPinToken), KeyAgreement: ka, PinHashEnc: long})
		add(&ctap.ClientPINRequest{PinUvAuthProtocol: pv, SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingUvWithPerms), KeyAgreement: ka, Permissions: ctap.Uint(2), RPID: &rp})
	}
	// Arrays where byte strings belong: the platform key's x, pinHashEnc (issue 9 item 13).
	_, peer, _ := k.sharedSecret(2)
	wrong, err := ctap.Marshal(map[any]any{1: 2, 2: ctap.PINGetPinToken,
		3: map[any]any{1: 2, 3: -25, -1: 1, -2: arrayOf(peer.X[:]), -3: peer.Y[:]}, 6: arrayOf(make([]byte, 16))})
	require.NoError(t, err)
	seeds = append(seeds, wrong)
	return append(seeds, nil, []byte{0xa0}, []byte{0xa1, 0x02, 0x18, 0xff}, []byte{0xa2, 0x02, 0x05, 0x03, 0x01})
}

// pinAttemptPossible reports whether body could be a PIN guess: a PIN-comparing subcommand with
// a supported protocol, a usable platform key and a pinHashEnc (which costs a retry even when it
// does not decrypt to a 16-byte hash, §6.5.5.7.2 steps 8-9).
func pinAttemptPossible(body []byte) bool {
	req, err := ctap.DecodeClientPIN(body)
	if err != nil || req.PinUvAuthProtocol == nil || req.KeyAgreement == nil {
		return false
	}
	switch *req.SubCommand {
	case ctap.PINChangePIN, ctap.PINGetPinToken, ctap.PINGetPinUvAuthTokenUsingPinWithPerms:
	default:
		return false
	}
	if v := *req.PinUvAuthProtocol; (v != 1 && v != 2) || req.PinHashEnc == nil {
		return false
	}
	key, err := cose.Unmarshal(req.KeyAgreement)
	if err != nil {
		return false
	}
	_, err = key.ECDH()
	return err == nil && key.Alg == cose.AlgECDHESHKDF256
}

func FuzzClientPIN(f *testing.F) {
	k := newTestKey(f, "default")
	for _, s := range pinFuzzSeeds(f, k) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		require.NoError(t, k.Store().PutPIN(pinFuzzState))
		k.mu.Lock()
		k.pinFailsInBoot = 0
		k.mu.Unlock()

		resp := k.HandleCBOR(context.Background(), append([]byte{byte(ctap.CmdClientPIN)}, body...), nil)
		require.NotEmpty(t, resp)
		st := ctap.Status(resp[0])
		require.NotEqual(t, "", st.String())
		if st == ctap.StatusOK && len(resp) > 1 {
			var out ctap.ClientPINResponse
			require.NoError(t, ctap.Unmarshal(resp[1:], &out), "the key answers with valid CBOR")
		}
		if st != ctap.StatusOK {
			require.Len(t, resp, 1, "an error carries no body")
		}

		after, err := k.Store().PIN()
		require.NoError(t, err)
		if after.Retries != pinFuzzState.Retries {
			require.True(t, pinAttemptPossible(body), "retries changed by a request that made no PIN attempt")
			require.Equal(t, pinFuzzState.Retries-1, after.Retries, "one attempt costs exactly one retry")
			require.NotEqual(t, ctap.StatusOK, st)
		}
		if !bytes.Equal(after.Hash, pinFuzzState.Hash) {
			req, err := ctap.DecodeClientPIN(body)
			require.NoError(t, err)
			require.Equal(t, uint64(ctap.PINChangePIN), *req.SubCommand)
			require.Equal(t, ctap.StatusOK, st)
		}
	})
}

func FuzzConfig(f *testing.F) {
	k := newTestKey(f, "default")
	require.Equal(f, ctap.StatusOK, k.setPIN(2, "1234"))
	tok := k.mustToken(2, "1234", ctap.PermAuthenticatorConfig, "")
	pin, err := k.Store().PIN()
	require.NoError(f, err)
	base := store.Settings{MinPINLength: 5, MinPINLengthRPIDs: []string{"a.example"}}

	add := func(r *ctap.ConfigRequest) {
		b, err := ctap.Marshal(r)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, sub := range []uint64{ctap.ConfigEnableEnterpriseAttestation, ctap.ConfigToggleAlwaysUV, ctap.ConfigVendorPrototype, 7} {
		add(configReq(f, 2, tok, sub, nil))
		add(configReq(f, 2, nil, sub, nil))
	}
	for _, p := range []*ctap.SetMinPINLengthParams{
		{NewMinPINLength: ctap.Uint(8)}, {NewMinPINLength: ctap.Uint(3)}, {ForceChangePIN: ctap.Bool(true)},
		{MinPINLengthRPIDs: []string{"b.example", "c.example"}}, {},
	} {
		add(configReq(f, 2, tok, ctap.ConfigSetMinPINLength, p))
		add(configReq(f, 1, tok, ctap.ConfigSetMinPINLength, p))
	}
	f.Add([]byte{})
	f.Add([]byte{0xa1, 0x01, 0x03})

	f.Fuzz(func(t *testing.T, body []byte) {
		require.NoError(t, k.Store().PutPIN(pin))
		require.NoError(t, k.Store().PutSettings(base))

		resp := k.HandleCBOR(context.Background(), append([]byte{byte(ctap.CmdConfig)}, body...), nil)
		require.NotEmpty(t, resp)
		st := ctap.Status(resp[0])
		require.Len(t, resp, 1, "authenticatorConfig answers with a status only")

		got, err := k.Store().Settings()
		require.NoError(t, err)
		after, err := k.Store().PIN()
		require.NoError(t, err)
		require.Equal(t, pin.Retries, after.Retries, "config never touches the PIN retries")
		require.Equal(t, pin.Hash, after.Hash)
		changed := got.AlwaysUV != base.AlwaysUV || got.EnterpriseAttestation != base.EnterpriseAttestation ||
			got.MinPINLength != base.MinPINLength || !slices.Equal(got.MinPINLengthRPIDs, base.MinPINLengthRPIDs) ||
			after.ForceChange != pin.ForceChange
		if st != ctap.StatusOK {
			require.False(t, changed, "a refused request changed state (%v)", st)
			return
		}
		require.GreaterOrEqual(t, got.MinPINLength, base.MinPINLength, "the minimum PIN length never decreases")
		// With a PIN set, success means the request carried a valid MAC under the acfg token.
		req, err := ctap.DecodeConfig(body)
		require.NoError(t, err)
		require.NotNil(t, req.PinUvAuthProtocol)
		msg := append(append(bytes.Repeat([]byte{0xff}, 32), 0x0d, byte(*req.SubCommand)), req.SubCommandParams...)
		require.Equal(t, authParam(t, int(*req.PinUvAuthProtocol), tok, msg), []byte(req.PinUvAuthParam))
	})
}
