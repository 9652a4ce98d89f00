package authenticator

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/stretchr/testify/require"
)

// coreHMACInput builds an hmac-secret input for salts as a platform does, returning the
// protocol and shared secret that decrypt the output.
func (k *testKey) coreHMACInput(v int, salts ...[]byte) (*ctap.HMACSecretInput, pinuv.Protocol, []byte) {
	k.t.Helper()
	p, pk, shared := k.sharedSecret(v)
	enc, err := p.Encrypt(shared, bytes.Join(salts, nil))
	require.NoError(k.t, err)
	return &ctap.HMACSecretInput{KeyAgreement: rawCOSE(k.t, pk), SaltEnc: enc, SaltAuth: p.Authenticate(shared, enc),
		PinUvAuthProtocol: ctap.Uint(uint64(v))}, p, shared
}

type coreExtOut struct {
	HMACSecret   []byte `cbor:"hmac-secret"`
	CredBlob     []byte `cbor:"credBlob"`
	MinPINLength uint64 `cbor:"minPinLength"`
}

func coreExt(t testing.TB, ad *ctap.AuthData) coreExtOut {
	t.Helper()
	var out coreExtOut
	if ad.Extensions != nil {
		require.NoError(t, ctap.Unmarshal(ad.Extensions, &out))
	}
	return out
}

// coreHMAC runs getAssertion with hmac-secret and returns the decrypted output.
func (k *testKey) coreHMAC(req *ctap.GetAssertionRequest, v int, salts ...[]byte) []byte {
	k.t.Helper()
	in, p, shared := k.coreHMACInput(v, salts...)
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	_, ad := k.coreAssert(req, nil)
	out := coreExt(k.t, ad).HMACSecret
	require.NotEmpty(k.t, out)
	dec, err := p.Decrypt(shared, out)
	require.NoError(k.t, err)
	require.Len(k.t, dec, 32*len(salts))
	return dec
}

func salt() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

func TestHMACSecret(t *testing.T) {
	t.Parallel()
	for _, rk := range []bool{false, true} {
		for _, v := range []int{1, 2} {
			k := newTestKey(t, "default")
			require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
			mc := makeCredReq("example.com", []byte("alice"), rk)
			mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
			tok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
			mc.PinUvAuthParam, mc.PinUvAuthProtocol = authParam(t, 2, tok, mc.ClientDataHash), ctap.Uint(2)
			c := k.coreMake(mc)
			var made struct {
				HMACSecret bool `cbor:"hmac-secret"`
			}
			require.NoError(t, ctap.Unmarshal(c.ad.Extensions, &made))
			require.True(t, made.HMACSecret)

			s1, s2 := salt(), salt()
			a := k.coreHMAC(gaReq("example.com", c.id), v, s1)
			b := k.coreHMAC(gaReq("example.com", c.id), v, s1)
			require.Equal(t, a, b, "same salt, same output")
			two := k.coreHMAC(gaReq("example.com", c.id), v, s1, s2)
			require.Equal(t, a, two[:32])
			require.NotEqual(t, two[:32], two[32:])
			uv := k.coreHMAC(k.coreGAToken(gaReq("example.com", c.id)), v, s1)
			require.NotEqual(t, a, uv, "UV and non-UV outputs differ")
			uv2 := k.coreHMAC(k.coreGAToken(gaReq("example.com", c.id)), v, s1)
			require.Equal(t, uv, uv2)
		}
	}
}

func TestHMACSecretErrorsAndNext(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	var ids [][]byte
	for _, u := range []string{"a", "b"} {
		mc := makeCredReq("example.com", []byte(u), true)
		mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
		ids = append(ids, k.coreMake(mc).id)
	}
	plain := k.coreMake(makeCredReq("example.com", []byte("plain"), false))

	in, _, _ := k.coreHMACInput(2, salt())
	in.SaltAuth[0] ^= 1
	req := gaReq("example.com", ids[0])
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	st, _ := k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)

	in, _, _ = k.coreHMACInput(2, salt()[:16])
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	st, _ = k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrInvalidLength, st)

	in, _, _ = k.coreHMACInput(2, salt())
	in.SaltEnc = nil
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	st, _ = k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrMissingParameter, st)

	// A credential made without hmac-secret gives no output.
	in, _, _ = k.coreHMACInput(2, salt())
	req = gaReq("example.com", plain.id)
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	_, ad := k.coreAssert(req, &plain.pub)
	require.Empty(t, coreExt(t, ad).HMACSecret)

	// getNextAssertion carries the extension output too.
	s := salt()
	in, p, shared := k.coreHMACInput(2, s)
	req = gaReq("example.com")
	req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	_, ad = k.coreAssert(req, nil)
	first, err := p.Decrypt(shared, coreExt(t, ad).HMACSecret)
	require.NoError(t, err)
	st, next := k.coreNext()
	require.Equal(t, ctap.StatusOK, st)
	nad, err := ctap.ParseAuthData(next.AuthData)
	require.NoError(t, err)
	second, err := p.Decrypt(shared, coreExt(t, nad).HMACSecret)
	require.NoError(t, err)
	require.Len(t, second, 32)
	require.NotEqual(t, first, second, "each credential has its own secret")
	require.Equal(t, second, k.coreHMAC(gaReq("example.com", ids[0]), 2, s), "the oldest comes second")
}

func TestHMACSecretMC(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	s := salt()
	in, p, shared := k.coreHMACInput(2, s)
	mc := makeCredReq("example.com", []byte("alice"), false)
	mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true), HMACSecretMC: in}
	c := k.coreMake(mc)
	var out struct {
		MC []byte `cbor:"hmac-secret-mc"`
	}
	require.NoError(t, ctap.Unmarshal(c.ad.Extensions, &out))
	got, err := p.Decrypt(shared, out.MC)
	require.NoError(t, err)
	require.Equal(t, k.coreHMAC(gaReq("example.com", c.id), 2, s), got, "hmac-secret-mc equals a later non-UV assertion")

	mc = makeCredReq("example.com", []byte("bob"), false)
	mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecretMC: in}
	st, _ := k.call(ctap.CmdMakeCredential, mc)
	require.Equal(t, ctap.ErrMissingParameter, st)
}

func TestHMACSecretNotOffered(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "no-hmac-secret")
	mc := makeCredReq("example.com", []byte("alice"), false)
	mc.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
	c := k.coreMake(mc)
	require.Nil(t, c.ad.Extensions, "an unsupported extension is ignored")
}

func TestCredBlobAndLargeBlobKey(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	blob := bytes.Repeat([]byte{7}, 32)
	for _, rk := range []bool{false, true} {
		mc := makeCredReq("example.com", []byte("alice"), rk)
		mc.Extensions = &ctap.MakeCredentialExtensions{CredBlob: blob}
		if rk {
			mc.Extensions.LargeBlobKey = ctap.Bool(true)
		}
		c := k.coreMake(mc)
		var out struct {
			CredBlob bool `cbor:"credBlob"`
		}
		require.NoError(t, ctap.Unmarshal(c.ad.Extensions, &out))
		require.True(t, out.CredBlob)
		if rk {
			require.Len(t, c.resp.LargeBlobKey, 32)
		} else {
			require.Nil(t, c.resp.LargeBlobKey)
		}

		req := gaReq("example.com", c.id)
		req.Extensions = &ctap.GetAssertionExtensions{CredBlob: ctap.Bool(true), LargeBlobKey: ctap.Bool(true)}
		resp, ad := k.coreAssert(req, &c.pub)
		require.Equal(t, blob, coreExt(t, ad).CredBlob)
		require.Equal(t, c.resp.LargeBlobKey, resp.LargeBlobKey)

		_, ad = k.coreAssert(gaReq("example.com", c.id), &c.pub)
		require.Nil(t, ad.Extensions, "no output unless asked")
	}
	mc := makeCredReq("example.com", []byte("bob"), true)
	mc.Extensions = &ctap.MakeCredentialExtensions{CredBlob: make([]byte, 33)}
	c := k.coreMake(mc)
	var out struct {
		CredBlob *bool `cbor:"credBlob"`
	}
	require.NoError(t, ctap.Unmarshal(c.ad.Extensions, &out))
	require.False(t, *out.CredBlob, "too long: not stored")
	req := gaReq("example.com", c.id)
	req.Extensions = &ctap.GetAssertionExtensions{CredBlob: ctap.Bool(true)}
	_, ad := k.coreAssert(req, &c.pub)
	require.NotNil(t, ad.Extensions)
	require.Empty(t, coreExt(t, ad).CredBlob)

	req.Extensions = &ctap.GetAssertionExtensions{LargeBlobKey: ctap.Bool(false)}
	st, _ := k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrInvalidOption, st)
}

func TestMinPINLengthExtension(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	s, err := k.Store().Settings()
	require.NoError(t, err)
	s.MinPINLength, s.MinPINLengthRPIDs = 6, []string{"allowed.com"}
	require.NoError(t, k.Store().PutSettings(s))
	for rp, want := range map[string]uint64{"allowed.com": 6, "other.com": 0} {
		mc := makeCredReq(rp, []byte("alice"), false)
		mc.Extensions = &ctap.MakeCredentialExtensions{MinPINLength: ctap.Bool(true)}
		c := k.coreMake(mc)
		require.Equal(t, want, coreExt(t, c.ad).MinPINLength, rp)
	}
	require.Equal(t, uint64(6), k.info().MinPINLength)
}
