package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// TestGetPINRetriesWithoutPIN: a key without a PIN answers getPINRetries with
// CTAP2_ERR_PIN_NOT_SET, as current keys do (python-fido2 2.x tests/device/test_clientpin.py,
// test_set_and_reset); the pinRetriesWithoutPin quirk gives the retry counter instead, as OpenSK,
// Solo 1/2, Nitrokey 3 and pico-fido do. With a PIN both answer the counter; after
// authenticatorReset the key has no PIN again.
func TestGetPINRetriesWithoutPIN(t *testing.T) {
	t.Parallel()
	getRetries := &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)}
	for _, tc := range []struct {
		persona string
		quirk   bool
	}{
		{"default", false}, {"no-hmac-secret", false}, {"default", true}, {"ctap20", true},
	} {
		k := newTestKey(t, tc.persona, func(p *persona.Persona) { p.Quirks.PINRetriesWithoutPIN = tc.quirk })
		require.Equal(t, tc.quirk, k.Persona().Quirks.PINRetriesWithoutPIN)
		noPIN := func(when string) {
			st, body := k.call(ctap.CmdClientPIN, getRetries)
			if !tc.quirk {
				require.Equal(t, ctap.ErrPINNotSet, st, "%s %s", tc.persona, when)
				return
			}
			require.Equal(t, ctap.StatusOK, st, "%s %s", tc.persona, when)
			var r ctap.ClientPINResponse
			require.NoError(t, ctap.Unmarshal(body, &r))
			require.Equal(t, uint64(maxPINRetries), *r.PINRetries)
		}
		noPIN("fresh")
		v := k.Persona().PinUvAuthProtocols[0]
		require.Equal(t, ctap.StatusOK, k.setPIN(v, "1234"))
		var r ctap.ClientPINResponse
		k.must(ctap.CmdClientPIN, getRetries, &r)
		require.Equal(t, uint64(maxPINRetries), *r.PINRetries, tc.persona)
		require.Equal(t, ctap.StatusOK, func() ctap.Status { st, _ := k.call(ctap.CmdReset, nil); return st }())
		noPIN("after reset")
	}
}

// TestBuiltinPINRetriesQuirk: the built-in personas of current keys answer PIN_NOT_SET; only the
// 2019-generation ctap20 persona keeps the old answer.
func TestBuiltinPINRetriesQuirk(t *testing.T) {
	t.Parallel()
	for _, name := range persona.Names() {
		p, err := persona.Builtin(name)
		require.NoError(t, err)
		require.Equal(t, name == "ctap20", p.Quirks.PINRetriesWithoutPIN, name)
	}
}
