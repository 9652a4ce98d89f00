package rp_test

import (
	"testing"

	"github.com/fidolab/fidolab/authenticator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
	"github.com/stretchr/testify/require"
)

// TestAlgorithmsVerifiedByGoWebAuthn registers and logs in with a key that offers one algorithm
// at a time, go-webauthn verifying everything: the packed attestation (self, signed with that
// algorithm; and batch, signed ES256 by the persona's certificate over a credential of that
// algorithm), the credential public key and each assertion's signature.
func TestAlgorithmsVerifiedByGoWebAuthn(t *testing.T) {
	t.Parallel()
	for _, alg := range []cose.Algorithm{cose.AlgES256, cose.AlgEdDSA, cose.AlgES384, cose.AlgES512, cose.AlgRS256, cose.AlgPS256} {
		for _, att := range []string{persona.AttestationSelf, persona.AttestationBatch} {
			t.Run(persona.AlgorithmName(int(alg))+"/"+att, func(t *testing.T) {
				t.Parallel()
				p, err := persona.Builtin("default")
				require.NoError(t, err)
				p.Algorithms, p.Attestation = []int{int(alg)}, att
				p.MaxCredentialIDLength, p.MaxMsgSize = 512, 4096
				st := store.NewMemory()
				a, err := authenticator.New(authenticator.Config{Persona: p, Store: st})
				require.NoError(t, err)
				conn := inproc.Connect(ctaphid.NewDevice(a, a.DeviceInfo()))
				t.Cleanup(func() { _ = conn.Close(); _ = a.Close(); _ = st.Close() })
				c := client.New(ctaphid.NewClient(conn))
				require.NoError(t, c.SetPIN(ctx(t), pin))

				r := newRP(t, rp.WithAttestationRoots(a.AttestationRoot()))
				u := newUser("alg")
				reg, err := r.Register(ctx(t), c, u, rp.RegisterOptions{ResidentKey: true,
					Attestation: protocol.PreferDirectAttestation, UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
				require.NoError(t, err)
				require.Equal(t, "packed", reg.Credential.AttestationFormat)
				pub, err := webauthncose.ParsePublicKey(reg.Credential.PublicKey)
				require.NoError(t, err)
				var got int64
				switch k := pub.(type) {
				case webauthncose.EC2PublicKeyData:
					got = k.Algorithm
				case webauthncose.OKPPublicKeyData:
					got = k.Algorithm
				case webauthncose.RSAPublicKeyData:
					got = k.Algorithm
				default:
					t.Fatalf("public key of type %T", pub)
				}
				require.Equal(t, int64(alg), got, "go-webauthn reads the algorithm the key chose")

				for range 2 {
					res, err := r.Login(ctx(t), c, u, rp.LoginOptions{UserVerification: protocol.VerificationRequired, UV: rp.UV{PIN: pin}})
					require.NoError(t, err, "go-webauthn verifies the %s assertion", persona.AlgorithmName(int(alg)))
					require.Equal(t, u, res.User)
				}
			})
		}
	}
}
