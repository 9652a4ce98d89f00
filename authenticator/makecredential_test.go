package authenticator

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fxamacker/cbor/v2"
	"github.com/stretchr/testify/require"
)

// coreCred is a credential made through makeCredential, as a relying party sees it.
type coreCred struct {
	id   []byte
	pub  cose.Key
	ad   *ctap.AuthData
	resp *ctap.MakeCredentialResponse
	cdh  []byte
}

// coreMake runs makeCredential, which must succeed, and parses the attested credential.
func (k *testKey) coreMake(req *ctap.MakeCredentialRequest) *coreCred {
	k.t.Helper()
	var resp ctap.MakeCredentialResponse
	k.must(ctap.CmdMakeCredential, req, &resp)
	ad, err := ctap.ParseAuthData(resp.AuthData)
	require.NoError(k.t, err)
	require.NotNil(k.t, ad.Attested)
	pub, err := cose.Unmarshal(ad.Attested.PublicKey)
	require.NoError(k.t, err)
	require.Equal(k.t, sha256.Sum256([]byte(req.RP.ID)), ad.RPIDHash)
	require.LessOrEqual(k.t, len(ad.Attested.CredentialID), k.p.MaxCredentialIDLength)
	return &coreCred{id: ad.Attested.CredentialID, pub: pub, ad: ad, resp: &resp, cdh: req.ClientDataHash}
}

// coreAssert runs getAssertion, which must succeed, and verifies the signature against pub
// when given.
func (k *testKey) coreAssert(req *ctap.GetAssertionRequest, pub *cose.Key) (*ctap.GetAssertionResponse, *ctap.AuthData) {
	k.t.Helper()
	var resp ctap.GetAssertionResponse
	k.must(ctap.CmdGetAssertion, req, &resp)
	return &resp, coreCheckAssertion(k.t, &resp, req.RPID, req.ClientDataHash, pub)
}

// coreCheckAssertion parses authData, checks the RP hash and verifies the signature over
// authData ‖ clientDataHash (ES256 with crypto/ecdsa).
func coreCheckAssertion(t testing.TB, resp *ctap.GetAssertionResponse, rpID string, clientDataHash []byte, pub *cose.Key) *ctap.AuthData {
	t.Helper()
	ad, err := ctap.ParseAuthData(resp.AuthData)
	require.NoError(t, err)
	require.Equal(t, sha256.Sum256([]byte(rpID)), ad.RPIDHash)
	if pub != nil {
		msg := append(append([]byte{}, resp.AuthData...), clientDataHash...)
		if pub.Alg == cose.AlgES256 {
			ep, err := pub.ECDSA()
			require.NoError(t, err)
			d := sha256.Sum256(msg)
			require.True(t, ecdsa.VerifyASN1(ep, d[:], resp.Signature), "assertion signature must verify")
		} else {
			require.NoError(t, pub.Verify(msg, resp.Signature))
		}
	}
	return ad
}

// coreEmptyParam encodes req with a zero-length pinUvAuthParam under key (the struct's
// omitempty would drop it).
func coreEmptyParam(t testing.TB, req any, key int) []byte {
	t.Helper()
	b, err := ctap.Marshal(req)
	require.NoError(t, err)
	var m map[int]cbor.RawMessage
	require.NoError(t, ctap.Unmarshal(b, &m))
	m[key] = cbor.RawMessage{0x40}
	out, err := ctap.Marshal(m)
	require.NoError(t, err)
	return out
}

func gaReq(rpID string, allow ...[]byte) *ctap.GetAssertionRequest {
	r := &ctap.GetAssertionRequest{RPID: rpID, ClientDataHash: cdh()}
	for _, id := range allow {
		r.AllowList = append(r.AllowList, ctap.CredentialDescriptor{ID: id, Type: ctap.CredentialTypePublicKey})
	}
	return r
}

func withAlg(r *ctap.MakeCredentialRequest, algs ...int64) *ctap.MakeCredentialRequest {
	r.PubKeyCredParams = nil
	for _, a := range algs {
		r.PubKeyCredParams = append(r.PubKeyCredParams, ctap.CredentialParam{Alg: &a, Type: ctap.CredentialTypePublicKey})
	}
	return r
}

func TestMakeCredentialRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rk   bool
		alg  int64
	}{
		{"non-resident ES256", false, -7},
		{"resident ES256", true, -7},
		{"non-resident EdDSA", false, -8},
		{"resident EdDSA", true, -8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newTestKey(t, "default")
			c := k.coreMake(withAlg(makeCredReq("example.com", []byte("alice"), tc.rk), tc.alg))
			require.Equal(t, cose.Algorithm(tc.alg), c.pub.Alg)
			require.Equal(t, byte(ctap.FlagUP|ctap.FlagAT), c.ad.Flags)
			require.Equal(t, k.p.AAGUID, persona.AAGUID(c.ad.Attested.AAGUID))
			var last uint32 = c.ad.SignCount
			for range 3 {
				resp, ad := k.coreAssert(gaReq("example.com", c.id), &c.pub)
				require.Equal(t, c.id, []byte(resp.Credential.ID))
				require.Equal(t, byte(ctap.FlagUP), ad.Flags)
				require.Greater(t, ad.SignCount, last, "counter strictly increases")
				last = ad.SignCount
			}
			if tc.rk {
				resp, _ := k.coreAssert(gaReq("example.com"), &c.pub)
				require.Equal(t, []byte("alice"), []byte(resp.User.ID))
				require.Empty(t, resp.User.Name, "no user details without UV")
			}
		})
	}
}

func TestMakeCredentialErrors(t *testing.T) {
	t.Parallel()
	noRK := func(p *persona.Persona) { p.ResidentKeys = false }
	for _, tc := range []struct {
		name    string
		persona string
		mods    []func(*persona.Persona)
		pin     bool
		policy  user.Policy
		req     func(t testing.TB) any
		want    ctap.Status
	}{
		{name: "not CBOR", req: func(t testing.TB) any { return []byte{0xff} }, want: ctap.ErrInvalidCBOR},
		{name: "empty", req: func(t testing.TB) any { return nil }, want: ctap.ErrMissingParameter},
		{name: "no clientDataHash", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.ClientDataHash = nil
			return r
		}, want: ctap.ErrMissingParameter},
		{name: "unsupported alg", req: func(t testing.TB) any { return withAlg(makeCredReq("a.com", []byte("u"), false), -257) }, want: ctap.ErrUnsupportedAlgorithm},
		{name: "EdDSA not in persona", persona: "no-hmac-secret", req: func(t testing.TB) any { return withAlg(makeCredReq("a.com", []byte("u"), false), -8) }, want: ctap.ErrUnsupportedAlgorithm},
		{name: "rk unsupported", mods: []func(*persona.Persona){noRK}, req: func(t testing.TB) any { return makeCredReq("a.com", []byte("u"), true) }, want: ctap.ErrUnsupportedOption},
		{name: "up false", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.Options = &ctap.Options{UP: ctap.Bool(false)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "uv without sensor", persona: "no-hmac-secret", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.Options = &ctap.Options{UV: ctap.Bool(true)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "uv without enrolled finger", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.Options = &ctap.Options{UV: ctap.Bool(true)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "probe without PIN", req: func(t testing.TB) any {
			return coreEmptyParam(t, makeCredReq("a.com", []byte("u"), false), 8)
		}, want: ctap.ErrPINNotSet},
		{name: "probe with PIN", pin: true, req: func(t testing.TB) any {
			return coreEmptyParam(t, makeCredReq("a.com", []byte("u"), false), 8)
		}, want: ctap.ErrPINInvalid},
		{name: "probe refused", policy: user.Fixed(user.No), req: func(t testing.TB) any {
			return coreEmptyParam(t, makeCredReq("a.com", []byte("u"), false), 8)
		}, want: ctap.ErrOperationDenied},
		{name: "param without protocol", pin: true, req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.PinUvAuthParam = make([]byte, 32)
			return r
		}, want: ctap.ErrMissingParameter},
		{name: "unknown protocol", pin: true, req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.PinUvAuthParam, r.PinUvAuthProtocol = make([]byte, 32), ctap.Uint(3)
			return r
		}, want: ctap.ErrInvalidParameter},
		{name: "wrong param", pin: true, req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.PinUvAuthParam, r.PinUvAuthProtocol = make([]byte, 32), ctap.Uint(2)
			return r
		}, want: ctap.ErrPINAuthInvalid},
		{name: "rk with PIN but no token", pin: true, req: func(t testing.TB) any { return makeCredReq("a.com", []byte("u"), true) }, want: ctap.ErrPUATRequired},
		{name: "CTAP 2.0 with PIN but no token", persona: "ctap20", pin: true, req: func(t testing.TB) any { return makeCredReq("a.com", []byte("u"), false) }, want: ctap.ErrPUATRequired},
		{name: "enterprise attestation disabled", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.EnterpriseAttestation = ctap.Uint(1)
			return r
		}, want: ctap.ErrInvalidParameter},
		{name: "user refuses", policy: user.Fixed(user.No), req: func(t testing.TB) any { return makeCredReq("a.com", []byte("u"), false) }, want: ctap.ErrOperationDenied},
		{name: "user away", policy: user.Fixed(user.Timeout), req: func(t testing.TB) any { return makeCredReq("a.com", []byte("u"), false) }, want: ctap.ErrUserActionTimeout},
		{name: "largeBlobKey non-resident", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.Extensions = &ctap.MakeCredentialExtensions{LargeBlobKey: ctap.Bool(true)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "largeBlobKey false", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), true)
			r.Extensions = &ctap.MakeCredentialExtensions{LargeBlobKey: ctap.Bool(false)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "credProtect out of range", req: func(t testing.TB) any {
			r := makeCredReq("a.com", []byte("u"), false)
			r.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(4)}
			return r
		}, want: ctap.ErrInvalidOption},
		{name: "user.id too long", req: func(t testing.TB) any { return makeCredReq("a.com", make([]byte, 65), true) }, want: ctap.ErrInvalidLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := tc.persona
			if name == "" {
				name = "default"
			}
			k := newTestKey(t, name, tc.mods...)
			if tc.pin {
				require.Equal(t, ctap.StatusOK, k.setPIN(k.p.PinUvAuthProtocols[0], "1234"))
			}
			if tc.policy != nil {
				k.user.Set(tc.policy)
			}
			st, _ := k.call(ctap.CmdMakeCredential, tc.req(t))
			require.Equal(t, tc.want, st)
			require.Equal(t, ctap.StatusOK, func() ctap.Status { s, _ := k.call(ctap.CmdGetInfo, nil); return s }())
		})
	}
}

func TestMakeCredentialWithToken(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))

	tok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
	r := makeCredReq("example.com", []byte("alice"), true)
	r.PinUvAuthParam, r.PinUvAuthProtocol = authParam(t, 2, tok, r.ClientDataHash), ctap.Uint(2)
	c := k.coreMake(r)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV|ctap.FlagAT), c.ad.Flags)

	// The token's mc permission is consumed by use.
	r2 := makeCredReq("example.com", []byte("bob"), true)
	r2.PinUvAuthParam, r2.PinUvAuthProtocol = authParam(t, 2, tok, r2.ClientDataHash), ctap.Uint(2)
	st, _ := k.call(ctap.CmdMakeCredential, r2)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)

	// A token bound to another RP, or without mc, is refused.
	tok = k.mustToken(2, "1234", ctap.PermMakeCredential, "other.com")
	r3 := makeCredReq("example.com", []byte("bob"), true)
	r3.PinUvAuthParam, r3.PinUvAuthProtocol = authParam(t, 2, tok, r3.ClientDataHash), ctap.Uint(2)
	st, _ = k.call(ctap.CmdMakeCredential, r3)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)
	tok = k.mustToken(2, "1234", ctap.PermGetAssertion, "example.com")
	r3.PinUvAuthParam = authParam(t, 2, tok, r3.ClientDataHash)
	st, _ = k.call(ctap.CmdMakeCredential, r3)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)

	// Non-resident without a token is fine on a makeCredUvNotRqd key.
	c = k.coreMake(makeCredReq("example.com", []byte("carol"), false))
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagAT), c.ad.Flags)
}

func TestMakeCredentialExcludeList(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	plain := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	protected := makeCredReq("example.com", []byte("bob"), true)
	protected.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(3)}
	prot := k.coreMake(protected)
	other := k.coreMake(makeCredReq("other.com", []byte("alice"), false))

	excl := func(ids ...[]byte) *ctap.MakeCredentialRequest {
		r := makeCredReq("example.com", []byte("new"), false)
		for _, id := range ids {
			r.ExcludeList = append(r.ExcludeList, ctap.CredentialDescriptor{ID: id, Type: ctap.CredentialTypePublicKey})
		}
		return r
	}
	asked := k.user.Asked()
	st, _ := k.call(ctap.CmdMakeCredential, excl([]byte("foreign"), plain.id))
	require.Equal(t, ctap.ErrCredentialExcluded, st)
	require.Equal(t, asked+1, k.user.Asked(), "exclusion waits for a touch")

	// Even a refused touch ends in CREDENTIAL_EXCLUDED.
	k.user.Set(user.Fixed(user.No))
	st, _ = k.call(ctap.CmdMakeCredential, excl(plain.id))
	require.Equal(t, ctap.ErrCredentialExcluded, st)
	k.user.Set(user.Always)

	// Another RP's credential and a credProtect-3 one without UV do not exclude.
	k.coreMake(excl(other.id, prot.id))

	// With UV, the credProtect-3 credential excludes.
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	tok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
	r := excl(prot.id)
	r.PinUvAuthParam, r.PinUvAuthProtocol = authParam(t, 2, tok, r.ClientDataHash), ctap.Uint(2)
	st, _ = k.call(ctap.CmdMakeCredential, r)
	require.Equal(t, ctap.ErrCredentialExcluded, st)
}

func TestMakeCredentialResidentSlots(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", func(p *persona.Persona) { p.ResidentCapacity = 3 })
	k.coreMake(makeCredReq("example.com", []byte("ab"), true))
	k.coreMake(makeCredReq("example.com", []byte("abc"), true))
	k.coreMake(makeCredReq("other.com", []byte("ab"), true))
	n, err := k.Store().CountResident()
	require.NoError(t, err)
	require.Equal(t, 3, n, "ids sharing a prefix are distinct accounts")
	require.Equal(t, uint64(0), *k.info().RemainingDiscoverableCredentials)

	st, _ := k.call(ctap.CmdMakeCredential, makeCredReq("example.com", []byte("zed"), true))
	require.Equal(t, ctap.ErrKeyStoreFull, st)

	// Replacing an account needs no room and makes it the newest.
	c := k.coreMake(makeCredReq("example.com", []byte("ab"), true))
	creds, err := k.Store().Resident("example.com")
	require.NoError(t, err)
	require.Len(t, creds, 2)
	require.Equal(t, c.id, creds[0].ID)
	require.Equal(t, []byte("ab"), creds[0].UserID)
	require.Equal(t, []byte("abc"), creds[1].UserID)
	resp, _ := k.coreAssert(gaReq("example.com"), &c.pub)
	require.Equal(t, []byte("ab"), []byte(resp.User.ID))
	require.Equal(t, 2, resp.NumberOfCredentials)
}

func TestMakeCredentialTruncatesNames(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	r := makeCredReq("example.com", []byte("u"), true)
	r.User.Name = string(make([]byte, 63)) + "é" + "tail"
	k.coreMake(r)
	creds, err := k.Store().Resident("example.com")
	require.NoError(t, err)
	require.Len(t, creds, 1)
	require.Len(t, creds[0].UserName, 63, "a split character is dropped, not mangled")
}
