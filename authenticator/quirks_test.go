package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// TestQuirkHMACSecretPerBoot: a conforming key gives the same hmac-secret output for the same
// salt before and after a power cycle; with hmacSecretPerBoot the output is stable within one
// boot and different after it, for resident and non-resident credentials alike.
func TestQuirkHMACSecretPerBoot(t *testing.T) {
	t.Parallel()
	for _, perBoot := range []bool{false, true} {
		for _, rk := range []bool{false, true} {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.HMACSecretPerBoot = perBoot })
			mc := makeCredReq("example.com", []byte("alice"), rk)
			mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
			c := k.coreMake(mc)
			s := salt()
			before := k.coreHMAC(gaReq("example.com", c.id), 2, s)
			require.Equal(t, before, k.coreHMAC(gaReq("example.com", c.id), 2, s), "stable within one boot")
			require.NoError(t, k.PowerCycle())
			after := k.coreHMAC(gaReq("example.com", c.id), 2, s)
			if perBoot {
				require.NotEqual(t, before, after, "rk=%v: a new boot, a new output", rk)
			} else {
				require.Equal(t, before, after, "rk=%v: CredRandom survives the power cycle", rk)
			}
		}
	}
}

// TestQuirkDiscoverableIgnoresRPID: without allowList a conforming key returns only the RP's
// discoverable credentials; with discoverableIgnoresRpId it returns every RP's, newest first, and
// still signs for the RP that was asked.
func TestQuirkDiscoverableIgnoresRPID(t *testing.T) {
	t.Parallel()
	for _, ignores := range []bool{false, true} {
		k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.DiscoverableIgnoresRPID = ignores })
		mine := k.coreMake(makeCredReq("login.example", []byte("alice"), true))
		other := k.coreMake(makeCredReq("other.example", []byte("mallory"), true))
		k.coreMake(makeCredReq("third.example", []byte("x"), false)) // not discoverable: never listed
		if !ignores {
			resp, _ := k.coreAssert(gaReq("login.example"), &mine.pub)
			require.Equal(t, mine.id, []byte(resp.Credential.ID))
			require.Zero(t, resp.NumberOfCredentials, "one credential: no count")
			continue
		}
		resp, _ := k.coreAssert(gaReq("login.example"), &other.pub)
		require.Equal(t, other.id, []byte(resp.Credential.ID), "the newest of any RP comes first")
		require.Equal(t, 2, resp.NumberOfCredentials)
		st, _ := k.call(ctap.CmdGetAssertion, gaReq("nobody.example"))
		require.Equal(t, ctap.StatusOK, st, "even an RP without credentials gets some")
	}
}
