package authenticator

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// coreGAToken returns a getAssertion request carrying a fresh UV token for rpID.
func (k *testKey) coreGAToken(req *ctap.GetAssertionRequest) *ctap.GetAssertionRequest {
	k.t.Helper()
	tok := k.mustToken(2, "1234", ctap.PermGetAssertion, req.RPID)
	req.PinUvAuthParam, req.PinUvAuthProtocol = authParam(k.t, 2, tok, req.ClientDataHash), ctap.Uint(2)
	return req
}

func (k *testKey) coreNext() (ctap.Status, *ctap.GetAssertionResponse) {
	k.t.Helper()
	st, body := k.call(ctap.CmdGetNextAssertion, nil)
	if st != ctap.StatusOK {
		return st, nil
	}
	var resp ctap.GetAssertionResponse
	require.NoError(k.t, ctap.Unmarshal(body, &resp))
	return st, &resp
}

func TestGetAssertionNewestFirst(t *testing.T) {
	t.Parallel()
	for _, oldestFirst := range []bool{false, true} {
		k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.OldestFirst = oldestFirst })
		var made []*coreCred
		for _, u := range []string{"first", "second", "third"} {
			made = append(made, k.coreMake(makeCredReq("example.com", []byte(u), true)))
		}
		k.coreMake(makeCredReq("other.com", []byte("x"), true))
		want := []*coreCred{made[2], made[1], made[0]}
		if oldestFirst {
			want = made
		}
		req := gaReq("example.com")
		resp, ad := k.coreAssert(req, &want[0].pub)
		require.Equal(t, want[0].id, []byte(resp.Credential.ID))
		require.Equal(t, 3, resp.NumberOfCredentials)
		require.Empty(t, resp.User.Name)
		last := ad.SignCount
		for i := 1; i < 3; i++ {
			k.clock.Advance(20 * time.Second) // each call restarts the 30 s timer
			st, next := k.coreNext()
			require.Equal(t, ctap.StatusOK, st)
			require.Equal(t, want[i].id, []byte(next.Credential.ID))
			require.Zero(t, next.NumberOfCredentials)
			require.NotNil(t, next.User)
			ad := coreCheckAssertion(t, next, "example.com", req.ClientDataHash, &want[i].pub)
			require.Greater(t, ad.SignCount, last)
			last = ad.SignCount
		}
		st, _ := k.coreNext()
		require.Equal(t, ctap.ErrNotAllowed, st, "nothing left")
	}
}

func TestGetNextAssertionEnds(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, u := range []string{"a", "b", "c"} {
		k.coreMake(makeCredReq("example.com", []byte(u), true))
	}
	st, _ := k.coreNext()
	require.Equal(t, ctap.ErrNotAllowed, st, "no getAssertion before")

	k.coreAssert(gaReq("example.com"), nil)
	k.clock.Advance(31 * time.Second)
	st, _ = k.coreNext()
	require.Equal(t, ctap.ErrNotAllowed, st, "timer expired")

	k.coreAssert(gaReq("example.com"), nil)
	k.info()
	st, _ = k.coreNext()
	require.Equal(t, ctap.ErrNotAllowed, st, "another command ends the sequence")

	k.coreAssert(gaReq("example.com"), nil)
	require.NoError(t, k.PowerCycle())
	st, _ = k.coreNext()
	require.Equal(t, ctap.ErrNotAllowed, st, "power cycle ends the sequence")
}

func TestGetAssertionUserDetailsWithUV(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	for _, u := range []string{"a", "b"} {
		r := makeCredReq("example.com", []byte(u), true)
		tok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
		r.PinUvAuthParam, r.PinUvAuthProtocol = authParam(t, 2, tok, r.ClientDataHash), ctap.Uint(2)
		k.coreMake(r)
	}
	resp, ad := k.coreAssert(k.coreGAToken(gaReq("example.com")), nil)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV), ad.Flags)
	require.Equal(t, "b", resp.User.Name)
	require.Equal(t, "User b", resp.User.DisplayName)
	st, next := k.coreNext()
	require.Equal(t, ctap.StatusOK, st)
	require.Equal(t, "a", next.User.Name)
	nad, err := ctap.ParseAuthData(next.AuthData)
	require.NoError(t, err)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV), nad.Flags)

	// The token's ga permission was used up.
	req := gaReq("example.com")
	req.PinUvAuthParam, req.PinUvAuthProtocol = resp.Signature[:32], ctap.Uint(2)
	st, _ = k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrPINAuthInvalid, st)
}

func TestGetAssertionRejectsForeignIDs(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	other := newTestKey(t, "default")
	mine := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	res := k.coreMake(makeCredReq("example.com", []byte("bob"), true))
	theirs := other.coreMake(makeCredReq("example.com", []byte("alice"), false))
	otherRP := k.coreMake(makeCredReq("evil.com", []byte("alice"), false))

	flip := func(b []byte, i int) []byte { c := append([]byte{}, b...); c[i] ^= 1; return c }
	random := make([]byte, len(mine.id))
	_, _ = rand.Read(random)
	for name, id := range map[string][]byte{
		"foreign key":      theirs.id,
		"other RP":         otherRP.id,
		"flipped meta":     flip(mine.id, 1),
		"flipped body":     flip(mine.id, 20),
		"flipped tag":      flip(mine.id, len(mine.id)-1),
		"truncated":        mine.id[:len(mine.id)-1],
		"random":           random,
		"version byte":     flip(mine.id, 0),
		"empty":            {},
		"resident flipped": flip(res.id, 30),
	} {
		st, _ := k.call(ctap.CmdGetAssertion, gaReq("example.com", id))
		require.Equal(t, ctap.ErrNoCredentials, st, name)
	}
	// A mixed allowList still finds ours, resident or not.
	resp, _ := k.coreAssert(gaReq("example.com", theirs.id, random, mine.id), &mine.pub)
	require.Equal(t, mine.id, []byte(resp.Credential.ID))
	require.Nil(t, resp.User)
	resp, _ = k.coreAssert(gaReq("example.com", otherRP.id, res.id), &res.pub)
	require.Equal(t, res.id, []byte(resp.Credential.ID))
	require.Equal(t, []byte("bob"), []byte(resp.User.ID))

	// A deleted resident credential stops working although its ID still unseals.
	require.NoError(t, k.Store().DeleteResident(res.id))
	st, _ := k.call(ctap.CmdGetAssertion, gaReq("example.com", res.id))
	require.Equal(t, ctap.ErrNoCredentials, st)
	// No discoverable credentials for an RP.
	st, _ = k.call(ctap.CmdGetAssertion, gaReq("nobody.com"))
	require.Equal(t, ctap.ErrNoCredentials, st)
}

func TestGetAssertionCredProtect(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	ids := map[uint64][]byte{}
	for _, level := range []uint64{1, 2, 3} {
		r := makeCredReq("example.com", []byte{byte('0' + level)}, true)
		r.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(level)}
		tok := k.mustToken(2, "1234", ctap.PermMakeCredential, "example.com")
		r.PinUvAuthParam, r.PinUvAuthProtocol = authParam(t, 2, tok, r.ClientDataHash), ctap.Uint(2)
		c := k.coreMake(r)
		var out struct {
			CredProtect uint64 `cbor:"credProtect"`
		}
		require.NoError(t, ctap.Unmarshal(c.ad.Extensions, &out))
		require.Equal(t, level, out.CredProtect)
		ids[level] = c.id
	}
	nr := makeCredReq("example.com", []byte("nr"), false)
	nr.Extensions = &ctap.MakeCredentialExtensions{CredProtect: ctap.Uint(3)}
	nr3 := k.coreMake(nr)

	for _, tc := range []struct {
		name  string
		allow [][]byte
		uv    bool
		want  ctap.Status
		n     int
	}{
		{"discoverable without UV sees level 1 only", nil, false, ctap.StatusOK, 1},
		{"discoverable with UV sees all", nil, true, ctap.StatusOK, 3},
		{"level 2 by ID without UV", [][]byte{ids[2]}, false, ctap.StatusOK, 0},
		{"level 3 by ID without UV", [][]byte{ids[3]}, false, ctap.ErrNoCredentials, 0},
		{"non-resident level 3 without UV", [][]byte{nr3.id}, false, ctap.ErrNoCredentials, 0},
		{"non-resident level 3 with UV", [][]byte{nr3.id}, true, ctap.StatusOK, 0},
		{"level 3 by ID with UV", [][]byte{ids[3]}, true, ctap.StatusOK, 0},
	} {
		req := gaReq("example.com", tc.allow...)
		if tc.uv {
			k.coreGAToken(req)
		}
		st, body := k.call(ctap.CmdGetAssertion, req)
		require.Equal(t, tc.want, st, tc.name)
		if st == ctap.StatusOK {
			var resp ctap.GetAssertionResponse
			require.NoError(t, ctap.Unmarshal(body, &resp))
			if tc.n == 1 {
				require.Equal(t, ids[1], []byte(resp.Credential.ID), tc.name)
			}
			if tc.n > 1 {
				require.Equal(t, tc.n, resp.NumberOfCredentials, tc.name)
			}
		}
	}
}

func TestGetAssertionOptions(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))

	req := gaReq("example.com", c.id)
	req.Options = &ctap.Options{RK: ctap.Bool(false)}
	st, _ := k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrUnsupportedOption, st, "rk is not a getAssertion option")

	req = gaReq("example.com", c.id)
	req.Options = &ctap.Options{UV: ctap.Bool(true)}
	st, _ = k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrInvalidOption, st, "no finger enrolled")

	// Silent assertion: no touch asked, no UP flag.
	asked := k.user.Asked()
	req = gaReq("example.com", c.id)
	req.Options = &ctap.Options{UP: ctap.Bool(false)}
	_, ad := k.coreAssert(req, &c.pub)
	require.Zero(t, ad.Flags&ctap.FlagUP)
	require.Equal(t, asked, k.user.Asked())

	for _, tc := range []struct {
		policy user.Policy
		want   ctap.Status
	}{{user.Fixed(user.No), ctap.ErrOperationDenied}, {user.Fixed(user.Timeout), ctap.ErrUserActionTimeout}} {
		k.user.Set(tc.policy)
		st, _ = k.call(ctap.CmdGetAssertion, gaReq("example.com", c.id))
		require.Equal(t, tc.want, st)
	}
	k.user.Set(user.Always)

	st, _ = k.call(ctap.CmdGetAssertion, coreEmptyParam(t, gaReq("example.com", c.id), 6))
	require.Equal(t, ctap.ErrPINNotSet, st)
	st, _ = k.call(ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: "example.com"})
	require.Equal(t, ctap.ErrMissingParameter, st)
	st, _ = k.call(ctap.CmdGetAssertion, []byte{0xa1, 0x01})
	require.Equal(t, ctap.ErrInvalidCBOR, st)
}

func TestGetAssertionCancel(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	st, _ := k.callCtx(k.cancelWhenAsked(), ctap.CmdGetAssertion, gaReq("example.com", c.id))
	require.Equal(t, ctap.ErrKeepaliveCancel, st)
	st, _ = k.callCtx(k.cancelWhenAsked(), ctap.CmdMakeCredential, makeCredReq("example.com", []byte("bob"), false))
	require.Equal(t, ctap.ErrKeepaliveCancel, st)
}

func TestGetAssertionBuiltInUV(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	require.NoError(t, k.Store().PutFingerprint(store.Fingerprint{TemplateID: []byte{1}}))
	mc := makeCredReq("example.com", []byte("alice"), true)
	mc.Options.UV = ctap.Bool(true)
	c := k.coreMake(mc)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV|ctap.FlagAT), c.ad.Flags)

	asked := k.user.Asked()
	req := gaReq("example.com")
	req.Options = &ctap.Options{UV: ctap.Bool(true)}
	_, ad := k.coreAssert(req, &c.pub)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV), ad.Flags)
	require.Equal(t, asked+1, k.user.Asked(), "one finger is both UV and UP")

	k.user.Set(user.Fixed(user.No))
	req = gaReq("example.com")
	req.Options = &ctap.Options{UV: ctap.Bool(true)}
	st, _ := k.call(ctap.CmdGetAssertion, req)
	require.Equal(t, ctap.ErrPUATRequired, st, "failed UV with a PIN set sends the platform to the PIN")
}

func TestGetAssertionAlwaysUV(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	s, err := k.Store().Settings()
	require.NoError(t, err)
	s.AlwaysUV = true
	require.NoError(t, k.Store().PutSettings(s))
	require.False(t, k.info().Options["makeCredUvNotRqd"])

	st, _ := k.call(ctap.CmdGetAssertion, gaReq("example.com", c.id))
	require.Equal(t, ctap.ErrPUATRequired, st)
	st, _ = k.call(ctap.CmdMakeCredential, makeCredReq("example.com", []byte("bob"), false))
	require.Equal(t, ctap.ErrPUATRequired, st)
	_, ad := k.coreAssert(k.coreGAToken(gaReq("example.com", c.id)), &c.pub)
	require.Equal(t, byte(ctap.FlagUP|ctap.FlagUV), ad.Flags)
}
