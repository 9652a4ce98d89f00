package authenticator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"slices"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/stretchr/testify/require"
)

func coreAPDU(t testing.TB, c u2f.Command) []byte {
	t.Helper()
	b, err := c.Encode()
	require.NoError(t, err)
	return b
}

func (k *testKey) coreU2F(c u2f.Command) ([]byte, u2f.StatusWord) {
	k.t.Helper()
	data, sw, err := u2f.ParseResponse(k.HandleMSG(context.Background(), coreAPDU(k.t, c)))
	require.NoError(k.t, err)
	return data, sw
}

func u2fParam(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// coreU2FRegister registers and verifies the attestation; it returns the key handle and key.
func (k *testKey) coreU2FRegister(app [32]byte) ([]byte, *ecdsa.PublicKey) {
	k.t.Helper()
	chal := u2fParam("challenge")
	data, sw := k.coreU2F(u2f.RegisterRequest{Challenge: chal, Application: app}.Command())
	require.Equal(k.t, u2f.SWNoError, sw)
	r, err := u2f.ParseRegisterResponse(data)
	require.NoError(k.t, err)
	cert, err := x509.ParseCertificate(r.Certificate)
	require.NoError(k.t, err)
	pool := x509.NewCertPool()
	pool.AddCert(k.AttestationRoot())
	_, err = cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(k.t, err)
	d := sha256.Sum256(u2f.RegisterSignedData(app, chal, r.KeyHandle, r.PublicKey))
	require.True(k.t, ecdsa.VerifyASN1(cert.PublicKey.(*ecdsa.PublicKey), d[:], r.Signature))
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), r.PublicKey[:])
	require.NoError(k.t, err)
	return r.KeyHandle, pub
}

func (k *testKey) coreU2FAuth(ctl u2f.Control, app [32]byte, kh []byte) ([]byte, u2f.StatusWord) {
	k.t.Helper()
	c, err := u2f.AuthenticateRequest{Control: ctl, Challenge: u2fParam("chal"), Application: app, KeyHandle: kh}.Command()
	require.NoError(k.t, err)
	return k.coreU2F(c)
}

func TestU2FRegisterAuthenticate(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"default", "u2f", "ctap20"} {
		k := newTestKey(t, name)
		data, sw := k.coreU2F(u2f.VersionCommand())
		require.Equal(t, u2f.SWNoError, sw)
		require.Equal(t, "U2F_V2", string(data))

		app := u2fParam("https://example.com")
		kh, pub := k.coreU2FRegister(app)
		require.LessOrEqual(t, len(kh), 255)

		_, sw = k.coreU2FAuth(u2f.ControlCheckOnly, app, kh)
		require.Equal(t, u2f.SWConditionsNotSatisfied, sw, "check-only: ours")
		_, sw = k.coreU2FAuth(u2f.ControlCheckOnly, u2fParam("other"), kh)
		require.Equal(t, u2f.SWWrongData, sw, "check-only: other app")
		_, sw = k.coreU2FAuth(u2f.ControlEnforceUserPresence, app, append(kh[:len(kh)-1:len(kh)-1], kh[len(kh)-1]^1))
		require.Equal(t, u2f.SWWrongData, sw, "forged handle")

		var last uint32
		for _, tc := range []struct {
			ctl      u2f.Control
			presence byte
		}{{u2f.ControlEnforceUserPresence, 1}, {u2f.ControlDontEnforceUserPresence, 0}} {
			asked := k.user.Asked()
			data, sw = k.coreU2FAuth(tc.ctl, app, kh)
			require.Equal(t, u2f.SWNoError, sw)
			r, err := u2f.ParseAuthenticateResponse(data)
			require.NoError(t, err)
			require.Equal(t, tc.presence, r.UserPresence)
			require.Equal(t, asked+int(tc.presence), k.user.Asked())
			require.Greater(t, r.Counter, last)
			last = r.Counter
			d := sha256.Sum256(u2f.AuthenticateSignedData(app, r.UserPresence, r.Counter, u2fParam("chal")))
			require.True(t, ecdsa.VerifyASN1(pub, d[:], r.Signature))
		}
	}
}

func TestU2FNeedsPresence(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	app := u2fParam("https://example.com")
	kh, _ := k.coreU2FRegister(app)
	for _, p := range []user.Policy{user.Fixed(user.No), user.Fixed(user.Timeout)} {
		k.user.Set(p)
		_, sw := k.coreU2F(u2f.RegisterRequest{Application: app}.Command())
		require.Equal(t, u2f.SWConditionsNotSatisfied, sw)
		_, sw = k.coreU2FAuth(u2f.ControlEnforceUserPresence, app, kh)
		require.Equal(t, u2f.SWConditionsNotSatisfied, sw)
		_, sw = k.coreU2FAuth(u2f.ControlDontEnforceUserPresence, app, kh)
		require.Equal(t, u2f.SWNoError, sw)
	}
}

func TestU2FBadAPDUs(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for name, tc := range map[string]struct {
		apdu []byte
		want u2f.StatusWord
	}{
		"short":              {[]byte{0x00, 0x01}, u2f.SWWrongLength},
		"class":              {[]byte{0x80, 0x03, 0, 0}, u2f.SWClaNotSupported},
		"instruction":        {[]byte{0x00, 0x44, 0, 0}, u2f.SWInsNotSupported},
		"register no data":   {[]byte{0x00, 0x01, 0, 0}, u2f.SWWrongLength},
		"register too short": {append([]byte{0x00, 0x01, 0x03, 0, 10}, make([]byte, 10)...), u2f.SWWrongLength},
		"version with data":  {[]byte{0x00, 0x03, 0, 0, 1, 0}, u2f.SWWrongLength},
		"bad control": {append(append([]byte{0x00, 0x02, 0x05, 0, 65}, make([]byte, 64)...), 0),
			u2f.SWWrongData},
		"bad Lc": {[]byte{0x00, 0x01, 0, 0, 5, 1}, u2f.SWWrongLength},
	} {
		_, sw, err := u2f.ParseResponse(k.HandleMSG(context.Background(), tc.apdu))
		require.NoError(t, err)
		require.Equal(t, tc.want, sw, name)
	}
	// A U2F-less persona rejects every instruction.
	k2 := newTestKey(t, "default", func(p *persona.Persona) { p.U2F, p.Versions = false, slices.DeleteFunc(p.Versions, isU2FVersion) })
	_, sw, err := u2f.ParseResponse(k2.HandleMSG(context.Background(), coreAPDU(t, u2f.VersionCommand())))
	require.NoError(t, err)
	require.Equal(t, u2f.SWInsNotSupported, sw)
}

func TestU2FInterop(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	app := u2fParam("example.com")
	// A CTAP2 non-resident ES256 credential works over U2F for the same RP hash …
	c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	pub, err := c.pub.ECDSA()
	require.NoError(t, err)
	data, sw := k.coreU2FAuth(u2f.ControlEnforceUserPresence, app, c.id)
	require.Equal(t, u2f.SWNoError, sw)
	r, err := u2f.ParseAuthenticateResponse(data)
	require.NoError(t, err)
	d := sha256.Sum256(u2f.AuthenticateSignedData(app, r.UserPresence, r.Counter, u2fParam("chal")))
	require.True(t, ecdsa.VerifyASN1(pub, d[:], r.Signature))
	// … but not for another application, nor an EdDSA or credProtect-3 credential.
	_, sw = k.coreU2FAuth(u2f.ControlCheckOnly, u2fParam("other.com"), c.id)
	require.Equal(t, u2f.SWWrongData, sw)
	ed := k.coreMake(withAlg(makeCredReq("example.com", []byte("bob"), false), -8))
	_, sw = k.coreU2FAuth(u2f.ControlCheckOnly, app, ed.id)
	require.Equal(t, u2f.SWWrongData, sw)
	p3 := makeCredReq("example.com", []byte("carol"), false)
	p3.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(3)}
	_, sw = k.coreU2FAuth(u2f.ControlCheckOnly, app, k.coreMake(p3).id)
	require.Equal(t, u2f.SWWrongData, sw)

	// A U2F registration is usable by CTAP2 when the RP ID hashes to the application.
	kh, upub := k.coreU2FRegister(app)
	req := gaReq("example.com", kh)
	var resp ctap.GetAssertionResponse
	k.must(ctap.CmdGetAssertion, req, &resp)
	dd := sha256.Sum256(append(append([]byte{}, resp.AuthData...), req.ClientDataHash...))
	require.True(t, ecdsa.VerifyASN1(upub, dd[:], resp.Signature))
}

// isU2FVersion picks U2F_V2 out of a persona's versions, for a persona made U2F-less.
func isU2FVersion(v string) bool { return v == ctap.VersionU2F }
