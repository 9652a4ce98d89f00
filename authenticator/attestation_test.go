package authenticator

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"slices"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// coreVerifyX5C checks a packed attestation with a certificate chain to root and returns the leaf.
func coreVerifyX5C(t testing.TB, c *coreCred, root *x509.Certificate) *x509.Certificate {
	t.Helper()
	require.Equal(t, ctap.FormatPacked, c.resp.Fmt)
	require.Equal(t, int64(-7), c.resp.AttStmt.Alg)
	require.Len(t, c.resp.AttStmt.X5C, 1)
	leaf, err := x509.ParseCertificate(c.resp.AttStmt.X5C[0])
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(root)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)
	d := sha256.Sum256(append(append([]byte{}, c.resp.AuthData...), c.cdh...))
	require.True(t, ecdsa.VerifyASN1(leaf.PublicKey.(*ecdsa.PublicKey), d[:], c.resp.AttStmt.Sig))
	// FIDO batch certificate requirements.
	require.Equal(t, 3, leaf.Version)
	require.Equal(t, []string{"Authenticator Attestation"}, leaf.Subject.OrganizationalUnit)
	require.True(t, leaf.BasicConstraintsValid)
	require.False(t, leaf.IsCA)
	var found bool
	for _, e := range leaf.Extensions {
		if e.Id.Equal(oidFIDOGenCeAAGUID) {
			var aaguid []byte
			_, err := asn1.Unmarshal(e.Value, &aaguid)
			require.NoError(t, err)
			require.Equal(t, c.ad.Attested.AAGUID[:], aaguid)
			require.False(t, e.Critical)
			found = true
		}
	}
	require.True(t, found, "id-fido-gen-ce-aaguid present")
	return leaf
}

func TestAttestationFormats(t *testing.T) {
	t.Parallel()
	t.Run("packed batch", func(t *testing.T) {
		t.Parallel()
		k := newTestKey(t, "default")
		root := k.AttestationRoot()
		require.NotNil(t, root)
		require.True(t, root.IsCA)
		c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
		leaf := coreVerifyX5C(t, c, root)
		require.Equal(t, "fidolab default batch", leaf.Subject.CommonName)
		require.Nil(t, c.resp.EpAtt)
	})
	t.Run("packed self", func(t *testing.T) {
		t.Parallel()
		for _, alg := range []int64{-7, -8} {
			k := newTestKey(t, "default", func(p *persona.Persona) { p.Attestation = persona.AttestationSelf })
			c := k.coreMake(withAlg(makeCredReq("example.com", []byte("alice"), false), alg))
			require.Equal(t, ctap.FormatPacked, c.resp.Fmt)
			require.Equal(t, alg, c.resp.AttStmt.Alg)
			require.Empty(t, c.resp.AttStmt.X5C)
			require.NoError(t, c.pub.Verify(append(append([]byte{}, c.resp.AuthData...), c.cdh...), c.resp.AttStmt.Sig))
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		k := newTestKey(t, "default", func(p *persona.Persona) { p.Attestation = persona.AttestationNone })
		st, body := k.call(ctap.CmdMakeCredential, makeCredReq("example.com", []byte("alice"), false))
		require.Equal(t, ctap.StatusOK, st)
		var raw struct {
			Fmt     string         `cbor:"1,keyasint"`
			AttStmt map[string]any `cbor:"3,keyasint"`
		}
		require.NoError(t, ctap.Unmarshal(body, &raw))
		require.Equal(t, "none", raw.Fmt)
		require.NotNil(t, raw.AttStmt)
		require.Empty(t, raw.AttStmt)
	})
	t.Run("enterprise", func(t *testing.T) {
		t.Parallel()
		k := newTestKey(t, "default")
		s, err := k.Store().Settings()
		require.NoError(t, err)
		s.EnterpriseAttestation = true
		require.NoError(t, k.Store().PutSettings(s))
		require.True(t, k.info().Options["ep"])
		r := makeCredReq("example.com", []byte("alice"), false)
		r.EnterpriseAttestation = ctap.Uint(3)
		st, _ := k.call(ctap.CmdMakeCredential, r)
		require.Equal(t, ctap.ErrInvalidOption, st)
		for _, v := range []uint64{1, 2} {
			r = makeCredReq("example.com", []byte("alice"), false)
			r.EnterpriseAttestation = ctap.Uint(v)
			c := k.coreMake(r)
			require.NotNil(t, c.resp.EpAtt)
			require.True(t, *c.resp.EpAtt)
			leaf := coreVerifyX5C(t, c, k.AttestationRoot())
			require.Contains(t, leaf.Subject.CommonName, "enterprise")
		}
	})
}

func TestAttestationCAKept(t *testing.T) {
	t.Parallel()
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	st := store.NewMemory()
	t.Cleanup(func() { _ = st.Close() })
	a1, err := New(Config{Persona: p, Store: st})
	require.NoError(t, err)
	root := a1.AttestationRoot()
	require.NoError(t, st.Reset())
	_ = a1.Close()
	a2, err := New(Config{Persona: p, Store: st})
	require.NoError(t, err)
	defer a2.Close()
	require.Equal(t, root.Raw, a2.AttestationRoot().Raw, "the CA survives reset and restart")

	other := newTestKey(t, "default")
	require.NotEqual(t, root.Raw, other.AttestationRoot().Raw, "each key state has its own CA")

	none := newTestKey(t, "default", func(p *persona.Persona) {
		p.Attestation, p.U2F, p.Versions, p.EnterpriseAtt = persona.AttestationNone, false, slices.DeleteFunc(p.Versions, isU2FVersion), false
	})
	require.Nil(t, none.AttestationRoot())
}
