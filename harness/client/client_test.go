package client

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/stretchr/testify/require"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	require.NoError(t, err)
	return b
}

func TestExactRequestBytes(t *testing.T) {
	t.Parallel()
	info := ctap.GetInfoResponse{Versions: []string{"FIDO_2_1"}, AAGUID: make([]byte, 16), PinUvAuthProtocols: []uint64{1, 2}}
	zero32 := strings.Repeat("00", 32)
	tests := []struct {
		name  string
		steps func(t *testing.T) []step
		run   func(ctx context.Context, c *Client) error
	}{
		{"getInfo", func(t *testing.T) []step { return []step{{want: []byte{0x04}, resp: ok(t, &info)}} },
			func(ctx context.Context, c *Client) error { _, err := c.GetInfo(ctx); return err }},
		{"reset", func(t *testing.T) []step { return []step{{want: []byte{0x07}, resp: ok(t, nil)}} },
			func(ctx context.Context, c *Client) error { return c.Reset(ctx) }},
		{"selection", func(t *testing.T) []step { return []step{{want: []byte{0x0b}, resp: ok(t, nil)}} },
			func(ctx context.Context, c *Client) error { return c.Selection(ctx) }},
		{"getPINRetries picks protocol two", func(t *testing.T) []step {
			return []step{
				{want: []byte{0x04}, resp: ok(t, &info)},
				{want: mustHex(t, "06 a2 0102 0201"), resp: ok(t, &ctap.ClientPINResponse{PINRetries: ctap.Uint(5)})},
			}
		}, func(ctx context.Context, c *Client) error {
			n, pc, err := c.PINRetries(ctx)
			if err == nil && (n != 5 || pc) {
				return fmt.Errorf("got %d %v", n, pc)
			}
			return err
		}},
		{"getAssertion", func(t *testing.T) []step {
			ad := (&ctap.AuthData{RPIDHash: sha256.Sum256([]byte("a.example")), Flags: ctap.FlagUP}).Marshal()
			return []step{{
				want: mustHex(t, "02 a2 01 69 612e6578616d706c65 02 5820"+zero32),
				resp: ok(t, &ctap.GetAssertionResponse{Credential: &ctap.CredentialDescriptor{ID: []byte{1}, Type: "public-key"}, AuthData: ad, Signature: []byte{1}}),
			}}
		}, func(ctx context.Context, c *Client) error {
			_, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{RPID: "a.example", ClientDataHash: make([]byte, 32)})
			return err
		}},
		{"u2f version", func(t *testing.T) []step {
			return []step{{want: mustHex(t, "00030000 000000"), resp: append([]byte("U2F_V2"), 0x90, 0x00)}}
		}, func(ctx context.Context, c *Client) error {
			v, err := c.Version(ctx)
			if err == nil && v != "U2F_V2" {
				return fmt.Errorf("version %q", v)
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &script{t: t, steps: tc.steps(t)}
			require.NoError(t, tc.run(context.Background(), New(s)))
			require.Empty(t, s.steps, "every scripted step was used")
		})
	}
}

func TestStatusErrors(t *testing.T) {
	t.Parallel()
	for _, st := range []ctap.Status{ctap.ErrPINInvalid, ctap.ErrPINBlocked, ctap.ErrNoCredentials, ctap.ErrKeepaliveCancel, ctap.ErrOther} {
		t.Run(st.String(), func(t *testing.T) {
			t.Parallel()
			c := New(&script{t: t, steps: []step{{resp: []byte{byte(st)}}}})
			err := c.Selection(context.Background())
			require.ErrorIs(t, err, st)
			var got ctap.Status
			require.ErrorAs(t, err, &got)
			require.Equal(t, st, got)
			require.Contains(t, err.Error(), st.String())
		})
	}
	t.Run("empty answer is malformed, not a status", func(t *testing.T) {
		t.Parallel()
		err := New(&script{t: t, steps: []step{{resp: nil}}}).Selection(context.Background())
		require.ErrorIs(t, err, ErrMalformedResponse)
		var s ctap.Status
		require.False(t, errors.As(err, &s))
	})
	t.Run("undecodable body is malformed", func(t *testing.T) {
		t.Parallel()
		_, err := New(&script{t: t, steps: []step{{resp: []byte{0, 0xa1}}}}).GetInfo(context.Background())
		require.ErrorIs(t, err, ErrMalformedResponse)
		var s ctap.Status
		require.False(t, errors.As(err, &s), "a CBOR error in a response must not look like a key status")
	})
	t.Run("transport error", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("unplugged")
		err := New(&script{t: t, steps: []step{{err: boom}}}).Reset(context.Background())
		require.ErrorIs(t, err, boom)
	})
}

func TestPINFlowAndRedaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newFakeKey(t)
	salt := make([]byte, 32)
	for i := range salt {
		salt[i] = byte(i)
	}
	credRandom := []byte("credRandom for the fake key.....")
	rpID := "example.org"
	key.cbor = func(req []byte) ([]byte, bool) {
		if ctap.Command(req[0]) != ctap.CmdGetAssertion {
			return nil, false
		}
		r, err := ctap.DecodeGetAssertion(req[1:])
		require.NoError(t, err)
		require.True(t, pinuv.V2{}.Verify(key.token, r.ClientDataHash, r.PinUvAuthParam), "GA pinUvAuthParam")
		key.secrets = append(key.secrets, r.PinUvAuthParam, r.Extensions.HMACSecret.SaltEnc, r.Extensions.HMACSecret.SaltAuth)
		peer, err := cose.Unmarshal(r.Extensions.HMACSecret.KeyAgreement)
		require.NoError(t, err)
		p := pinuv.V2{}
		ss, err := key.ka.SharedSecret(p, peer)
		require.NoError(t, err)
		require.True(t, p.Verify(ss, r.Extensions.HMACSecret.SaltEnc, r.Extensions.HMACSecret.SaltAuth))
		salts, err := p.Decrypt(ss, r.Extensions.HMACSecret.SaltEnc)
		require.NoError(t, err)
		m := hmac.New(sha256.New, credRandom)
		m.Write(salts)
		out, err := p.Encrypt(ss, m.Sum(nil))
		require.NoError(t, err)
		ad := &ctap.AuthData{RPIDHash: sha256.Sum256([]byte(rpID)), Flags: ctap.FlagUP | ctap.FlagUV,
			Extensions: mustMarshal(t, map[string][]byte{"hmac-secret": out})}
		return ok(t, &ctap.GetAssertionResponse{Credential: &ctap.CredentialDescriptor{ID: []byte("cred"), Type: "public-key"},
			AuthData: ad.Marshal(), Signature: []byte{0x30}, LargeBlobKey: []byte("largeBlobKey-secret-32-bytes....")}), true
	}
	var exchanges []Exchange
	c := New(key, WithRecorder(func(e Exchange) { exchanges = append(exchanges, e) }))

	const pin = "correct horse 1234"
	require.NoError(t, c.SetPIN(ctx, pin))
	_, err := c.GetPINToken(ctx, "wrong PIN", ctap.PermGetAssertion, rpID)
	require.ErrorIs(t, err, ctap.ErrPINInvalid)
	tok, err := c.GetPINToken(ctx, pin, ctap.PermGetAssertion|ctap.PermLargeBlobWrite, rpID)
	require.NoError(t, err)
	require.Equal(t, 2, tok.Protocol())

	hs, in, err := c.NewHMACSecret(ctx, salt, nil)
	require.NoError(t, err)
	cdh := sha256.Sum256([]byte("client data"))
	res, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{
		RPID: rpID, ClientDataHash: cdh[:], PinUvAuthParam: tok.Auth(cdh[:]), PinUvAuthProtocol: tok.ProtocolParam(),
		Extensions: &ctap.GetAssertionExtensions{HMACSecret: in},
	})
	require.NoError(t, err)
	out1, out2, err := hs.Output(res.AuthData)
	require.NoError(t, err)
	require.Nil(t, out2)
	m := hmac.New(sha256.New, credRandom)
	m.Write(salt)
	require.Equal(t, m.Sum(nil), out1, "hmac-secret output decrypts to HMAC(credRandom, salt)")
	key.secrets = append(key.secrets, []byte("largeBlobKey-secret-32-bytes...."), []byte(pin))

	require.NoError(t, c.LargeBlobs().Write(ctx, mustMarshal(t, []any{[]byte("blob")}), tok))

	require.NotEmpty(t, exchanges)
	redactions := 0
	for _, e := range exchanges {
		d := e.Describe()
		redactions += strings.Count(d, "<redacted ")
		for _, s := range key.secrets {
			if len(s) < 4 {
				continue
			}
			require.NotContains(t, d, hex.EncodeToString(s), "secret leaked in %s", e.Command)
			require.NotContains(t, d, string(s), "secret leaked in %s", e.Command)
		}
		require.NotContains(t, d, hex.EncodeToString(key.token))
	}
	require.GreaterOrEqual(t, redactions, 8, "secrets are replaced, not dropped")
	var ga Exchange
	for _, e := range exchanges {
		if e.Cmd == ctap.CmdGetAssertion {
			ga = e
		}
	}
	d := ga.Describe()
	require.Contains(t, d, "authenticatorGetAssertion → CTAP2_OK")
	require.Contains(t, d, `"example.org"`, "non-secret fields stay readable")
	require.Contains(t, d, "flags=UP|UV|ED")
	require.Contains(t, d, "extensions=hmac-secret")

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		s := fmt.Sprintf(verb, tok)
		require.NotContains(t, s, hex.EncodeToString(key.token), verb)
		require.NotContains(t, s, string(key.token), verb)
		require.Contains(t, s, "redacted", verb)
	}
	require.NotContains(t, fmt.Sprintf("%v %+v %#v", hs, hs, hs), hex.EncodeToString(hs.s.secret[:8]))
}

func TestAssertionsWalksAllCredentials(t *testing.T) {
	t.Parallel()
	rp := "multi.example"
	ad := (&ctap.AuthData{RPIDHash: sha256.Sum256([]byte(rp)), Flags: ctap.FlagUP}).Marshal()
	answer := func(id string, n int) []byte {
		return ok(t, &ctap.GetAssertionResponse{Credential: &ctap.CredentialDescriptor{ID: []byte(id), Type: "public-key"},
			AuthData: ad, Signature: []byte{1}, User: &ctap.UserEntity{ID: []byte("u-" + id)}, NumberOfCredentials: n})
	}
	s := &script{t: t, steps: []step{
		{resp: answer("c3", 3)}, {want: []byte{0x08}, resp: answer("c2", 0)}, {want: []byte{0x08}, resp: answer("c1", 0)},
	}}
	all, err := New(s).Assertions(context.Background(), &ctap.GetAssertionRequest{RPID: rp, ClientDataHash: make([]byte, 32)})
	require.NoError(t, err)
	require.Len(t, all, 3)
	for i, id := range []string{"c3", "c2", "c1"} {
		require.Equal(t, []byte(id), all[i].CredentialID)
		require.Equal(t, []byte("u-"+id), []byte(all[i].User.ID))
	}

	// An answer for another RP is refused.
	s = &script{t: t, steps: []step{{resp: answer("c1", 1)}}}
	_, err = New(s).GetAssertion(context.Background(), &ctap.GetAssertionRequest{RPID: "other.example", ClientDataHash: make([]byte, 32)})
	require.ErrorIs(t, err, ErrMalformedResponse)
}

func TestLargeBlobsRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	key := newFakeKey(t)
	key.info.MaxMsgSize = 128 // 64-byte fragments
	c := New(key)
	require.NoError(t, c.SetPIN(ctx, "1234"))
	tok, err := c.GetPINToken(ctx, "1234", ctap.PermLargeBlobWrite, "")
	require.NoError(t, err)

	empty := mustMarshal(t, []any{})
	key.blobs = append(append([]byte{}, empty...), func() []byte { s := sha256.Sum256(empty); return s[:16] }()...)
	got, err := c.LargeBlobs().Read(ctx)
	require.NoError(t, err)
	require.Equal(t, empty, got)

	big := make([]byte, 300)
	for i := range big {
		big[i] = byte(i)
	}
	array := mustMarshal(t, []any{map[int]any{1: big, 2: uint64(300)}})
	require.NoError(t, c.LargeBlobs().Write(ctx, array, tok))
	require.Len(t, key.blobs, len(array)+16)
	got, err = c.LargeBlobs().Read(ctx)
	require.NoError(t, err)
	require.Equal(t, array, got)

	key.blobs[3] ^= 1
	_, err = c.LargeBlobs().Read(ctx)
	require.ErrorIs(t, err, ErrLargeBlobIntegrity)
}

func TestU2FPollsForPresence(t *testing.T) {
	t.Parallel()
	sw := func(s u2f.StatusWord) []byte { return u2f.Response(nil, s) }
	auth := u2f.AuthenticateResponse{UserPresence: 1, Counter: 7, Signature: []byte{0x30, 0x00}}.Marshal()
	s := &script{t: t, steps: []step{
		{resp: sw(u2f.SWConditionsNotSatisfied)}, {resp: sw(u2f.SWConditionsNotSatisfied)},
		{resp: u2f.Response(auth, u2f.SWNoError)},
	}}
	var n int
	c := New(s, WithU2FPollInterval(time.Millisecond), WithRecorder(func(e Exchange) {
		n++
		require.True(t, e.U2F)
		require.Equal(t, "U2F_AUTHENTICATE", e.Command)
	}))
	var ch, app [32]byte
	r, err := c.Authenticate(context.Background(), u2f.ControlEnforceUserPresence, ch, app, []byte("kh"))
	require.NoError(t, err)
	require.Equal(t, uint32(7), r.Counter)
	require.Equal(t, 3, n)
	require.Equal(t, byte(u2f.ControlEnforceUserPresence), s.got[0][2], "P1 is the control byte")

	// Check-only never polls: 0x6985 is its answer.
	s = &script{t: t, steps: []step{{resp: sw(u2f.SWConditionsNotSatisfied)}}}
	_, err = New(s).Authenticate(context.Background(), u2f.ControlCheckOnly, ch, app, []byte("kh"))
	require.ErrorIs(t, err, u2f.SWConditionsNotSatisfied)

	// No touch before the deadline.
	steps := make([]step, 1000)
	for i := range steps {
		steps[i] = step{resp: sw(u2f.SWConditionsNotSatisfied)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err = New(&script{t: t, steps: steps}, WithU2FPollInterval(5*time.Millisecond)).Register(ctx, ch, app)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, err, u2f.SWConditionsNotSatisfied)

	// Wrong data is returned at once.
	s = &script{t: t, steps: []step{{resp: sw(u2f.SWWrongData)}}}
	_, err = New(s).Authenticate(context.Background(), u2f.ControlEnforceUserPresence, ch, app, []byte("kh"))
	var ue *U2FError
	require.ErrorAs(t, err, &ue)
	require.Equal(t, u2f.SWWrongData, ue.SW)
}

func TestDescribeRendersAndRedacts(t *testing.T) {
	t.Parallel()
	rp := "example.com"
	pinHashEnc := []byte("0123456789abcdef0123456789abcdef")
	req := append([]byte{byte(ctap.CmdClientPIN)}, mustMarshal(t, &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(2), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms),
		PinHashEnc: pinHashEnc, Permissions: ctap.Uint(3), RPID: &rp,
	})...)
	resp := ok(t, &ctap.ClientPINResponse{PinUvAuthToken: []byte("encrypted token, 48 bytes long, with the IV....")})
	e := Exchange{Command: ctap.CmdClientPIN.String(), Cmd: ctap.CmdClientPIN, Request: req, Response: resp, Duration: 3 * time.Millisecond}
	d := e.Describe()
	require.Equal(t, `authenticatorClientPIN → CTAP2_OK (3ms)
  request:  {1: 2, 2: 9, 6: "<redacted 32 bytes>", 9: 3, 10: "example.com"}
  response: {2: "<redacted 47 bytes>"}
`, d)

	bad := Exchange{Command: "authenticatorClientPIN", Cmd: ctap.CmdClientPIN, Request: append([]byte{6, 0xa1, 0x06, 0x58, 0x20}, pinHashEnc[:20]...)}
	require.NotContains(t, bad.Describe(), hex.EncodeToString(pinHashEnc[:8]), "undecodable requests are not dumped")
	require.Contains(t, bad.Describe(), "not decodable")
}
