package authenticator

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/stretchr/testify/require"
)

// algPersona is the default persona offering only algs, with packed self attestation (signed by
// the credential key itself, so that every algorithm signs an attestation too) and credential
// IDs long enough for RSA.
func algPersona(algs ...int) func(*persona.Persona) {
	return func(p *persona.Persona) {
		p.Algorithms = algs
		p.Attestation = persona.AttestationSelf
		p.MaxCredentialIDLength = 512
		p.MaxMsgSize = 4096
	}
}

// TestAlgorithms makes, attests, asserts and enumerates a credential of every algorithm a
// persona may offer: the COSE key, the self attestation and every assertion verify with the
// algorithm the key chose, resident and not.
func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		alg    cose.Algorithm
		idLen  int
		keyTyp cose.KeyType
	}{
		{cose.AlgES256, 62, cose.KeyTypeEC2},
		{cose.AlgEdDSA, 62, cose.KeyTypeOKP},
		{cose.AlgES384, 78, cose.KeyTypeEC2},
		{cose.AlgES512, 96, cose.KeyTypeEC2},
		{cose.AlgRS256, persona.RSACredentialIDLength, cose.KeyTypeRSA},
		{cose.AlgPS256, persona.RSACredentialIDLength, cose.KeyTypeRSA},
	} {
		t.Run(persona.AlgorithmName(int(tc.alg)), func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default", algPersona(int(tc.alg)))
			require.Equal(t, []ctap.AlgorithmParam{{Alg: int64(tc.alg), Type: ctap.CredentialTypePublicKey}}, k.info().Algorithms)
			for _, rk := range []bool{false, true} {
				c := k.coreMake(withAlg(makeCredReq("alg.example", []byte(fmt.Sprint("u", rk)), rk), -7, -8, -35, -36, -37, -257))
				require.Equal(t, tc.alg, c.pub.Alg, "the one algorithm offered is chosen")
				require.Equal(t, tc.keyTyp, c.pub.Type)
				require.Len(t, c.id, tc.idLen)
				require.Equal(t, credIDLen(int(tc.alg)), len(c.id))
				require.Equal(t, ctap.FormatPacked, c.resp.Fmt)
				require.Equal(t, int64(tc.alg), c.resp.AttStmt.Alg)
				require.Empty(t, c.resp.AttStmt.X5C, "self attestation")
				msg := append(append([]byte{}, c.resp.AuthData...), c.cdh...)
				require.NoError(t, c.pub.Verify(msg, c.resp.AttStmt.Sig), "self attestation verifies")
				for range 2 {
					resp, _ := k.coreAssert(gaReq("alg.example", c.id), &c.pub)
					require.Equal(t, c.id, []byte(resp.Credential.ID))
				}
				if rk {
					k.coreAssert(gaReq("alg.example"), &c.pub)
					tok := k.mgmtToken(ctap.PermCredentialManagement, "")
					creds := k.mgmtEnumerateCreds(ctap.CmdCredentialManagement, tok, "alg.example")
					require.Len(t, creds, 1)
					pub, err := cose.Unmarshal(creds[0].PublicKey)
					require.NoError(t, err)
					want, err := c.pub.Marshal()
					require.NoError(t, err)
					got, err := pub.Marshal()
					require.NoError(t, err)
					require.Equal(t, want, got, "credential management shows the credential's public key")
				}
			}
		})
	}
}

// TestAlgorithmChoice: makeCredential takes the first entry of pubKeyCredParams (the RP's
// preference) that the persona offers, whatever the persona's own order; none offered is
// CTAP2_ERR_UNSUPPORTED_ALGORITHM (CTAP 2.1 §6.1.2 step 3).
func TestAlgorithmChoice(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", algPersona(-257, -35, -7))
	for _, tc := range []struct {
		asked []int64
		want  cose.Algorithm
	}{
		{[]int64{-7, -257}, cose.AlgES256},
		{[]int64{-257, -7}, cose.AlgRS256},
		{[]int64{-8, -36, -35}, cose.AlgES384},
		{[]int64{-999, -37, -257}, cose.AlgRS256},
	} {
		c := k.coreMake(withAlg(makeCredReq("choice.example", []byte("u"), false), tc.asked...))
		require.Equal(t, tc.want, c.pub.Alg, "%v", tc.asked)
	}
	st, _ := k.call(ctap.CmdMakeCredential, withAlg(makeCredReq("choice.example", []byte("u"), false), -8, -36, -37))
	require.Equal(t, ctap.ErrUnsupportedAlgorithm, st)
}

// TestAlgorithmIDsAreBound: a credential ID names its algorithm in its authenticated header, so
// an ID whose algorithm bits are edited is not this key's, and the old ES256/EdDSA IDs (code 0)
// still open.
func TestAlgorithmIDsAreBound(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", algPersona(-35, -7, -8))
	for _, alg := range []int64{-35, -7, -8} {
		c := k.coreMake(withAlg(makeCredReq("bound.example", []byte("u"), false), alg))
		for code := range byte(8) { // the family bits and the variant bit
			id := bytes.Clone(c.id)
			id[1] = id[1]&^(metaAlg|metaVariant) | (code>>1)<<metaAlgShift
			if code&1 != 0 {
				id[1] |= metaVariant
			}
			if bytes.Equal(id, c.id) {
				continue
			}
			st, _ := k.call(ctap.CmdGetAssertion, gaReq("bound.example", id))
			require.Equal(t, ctap.ErrNoCredentials, st, "alg %d with code %d", alg, code)
		}
	}
}

// TestAlgorithmPersonaChecks: a persona offering RSA must have room for RSA credential IDs;
// persona.Validate and the key agree on how much room that is.
func TestAlgorithmPersonaChecks(t *testing.T) {
	t.Parallel()
	require.Equal(t, persona.RSACredentialIDLength, credIDLen(int(cose.AlgRS256)))
	require.Equal(t, persona.RSACredentialIDLength, credIDLen(int(cose.AlgPS256)))
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	p.Algorithms = []int{-257}
	require.ErrorContains(t, p.Validate(), "maxCredentialIdLength 128, want at least 286")
	p.MaxCredentialIDLength = 285
	require.ErrorContains(t, checkAlgorithms(p), "RS256 credential IDs are 286 bytes")
	p.MaxCredentialIDLength = 286
	require.NoError(t, p.Validate())
	require.NoError(t, checkAlgorithms(p))
}
