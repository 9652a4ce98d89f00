package trace_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock that moves 250 µs per reading, so traces are reproducible in shape.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 25, 16, 35, 42, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(250 * time.Microsecond)
	return c.t
}

// plainSecrets are what the test host knows in the clear; none may appear in a redacted trace.
type plainSecrets struct {
	pin, newPIN      string
	salt1, salt2     []byte
	out1, out2       []byte // hmac-secret outputs
	largeBlobKey     []byte
	credentialPubKey []byte // not secret: must stay visible
}

// session runs a realistic sequence against a fresh in-memory emulated key: getInfo, setPIN,
// a wrong PIN, a PIN token, a discoverable credential with hmac-secret and largeBlobKey, an
// assertion with two hmac-secret salts and the token, changePIN. Every report goes through conn
// wrappers made by wrap (outermost first).
func session(t *testing.T, wrap ...func(ctaphid.ReportConn) ctaphid.ReportConn) plainSecrets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer k.Close()
	var conn ctaphid.ReportConn = k.Connect()
	for i := len(wrap) - 1; i >= 0; i-- {
		conn = wrap[i](conn)
	}
	defer conn.Close()
	hid := ctaphid.NewClient(conn)
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	c := client.New(hid)

	ps := plainSecrets{pin: "correct-horse-7391", newPIN: "battery-staple-0264",
		salt1: bytes.Repeat([]byte{0x5a}, 32), salt2: bytes.Repeat([]byte{0xc3}, 32)}
	_, err = c.GetInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, c.SetPIN(ctx, ps.pin))
	_, err = c.GetPINToken(ctx, "wrong-pin-0000", ctap.PermMakeCredential, "login.microsoft.com")
	require.ErrorIs(t, err, ctap.ErrPINInvalid)

	tok, err := c.GetPINToken(ctx, ps.pin, ctap.PermMakeCredential, "login.microsoft.com")
	require.NoError(t, err)
	cdh := sha256.Sum256([]byte("register"))
	alg := int64(-7)
	mc, err := c.MakeCredential(ctx, &ctap.MakeCredentialRequest{
		ClientDataHash: cdh[:], RP: &ctap.RPEntity{ID: "login.microsoft.com", Name: "Microsoft"},
		User:             &ctap.UserEntity{ID: []byte("user-0001"), Name: "alice@contoso.com", DisplayName: "Alice"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}},
		Options:          &ctap.Options{RK: ctap.Bool(true)},
		Extensions:       &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true), LargeBlobKey: ctap.Bool(true)},
		PinUvAuthParam:   tok.Auth(cdh[:]), PinUvAuthProtocol: tok.ProtocolParam(),
	})
	require.NoError(t, err)
	ad, err := ctap.ParseAuthData(mc.Response.AuthData)
	require.NoError(t, err)
	ps.credentialPubKey = ad.Attested.CredentialID
	ps.largeBlobKey = mc.Response.LargeBlobKey
	require.Len(t, ps.largeBlobKey, 32)

	tok, err = c.GetPINToken(ctx, ps.pin, ctap.PermGetAssertion, "login.microsoft.com")
	require.NoError(t, err)
	hs, in, err := c.NewHMACSecret(ctx, ps.salt1, ps.salt2)
	require.NoError(t, err)
	gcdh := sha256.Sum256([]byte("sign in"))
	ga, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{
		RPID: "login.microsoft.com", ClientDataHash: gcdh[:],
		Extensions:     &ctap.GetAssertionExtensions{HMACSecret: in, LargeBlobKey: ctap.Bool(true)},
		PinUvAuthParam: tok.Auth(gcdh[:]), PinUvAuthProtocol: tok.ProtocolParam(),
	})
	require.NoError(t, err)
	gad, err := ctap.ParseAuthData(ga.Response.AuthData)
	require.NoError(t, err)
	ps.out1, ps.out2, err = hs.Output(gad)
	require.NoError(t, err)
	require.Len(t, ps.out2, 32)
	require.NoError(t, c.ChangePIN(ctx, ps.pin, ps.newPIN))
	return ps
}

// record runs session through two recorders at once, one keeping secrets and one redacting
// them, and returns both traces: the same reports, so the same secrets.
func record(t *testing.T) (secrets, redacted []byte, ps plainSecrets) {
	t.Helper()
	var sb, rb bytes.Buffer
	clk := newClock()
	srec, err := trace.NewRecorder(&sb, trace.Options{KeepSecrets: true, Now: clk.Now, Tool: "test"})
	require.NoError(t, err)
	rrec, err := trace.NewRecorder(&rb, trace.Options{Now: clk.Now, Tool: "test"})
	require.NoError(t, err)
	src := trace.Source{Transport: "inproc", Endpoint: "test key"}
	ps = session(t,
		func(c ctaphid.ReportConn) ctaphid.ReportConn { return srec.Conn(c, src) },
		func(c ctaphid.ReportConn) ctaphid.ReportConn { return rrec.Conn(c, src) })
	require.NoError(t, srec.Close())
	require.NoError(t, rrec.Close())
	return sb.Bytes(), rb.Bytes(), ps
}
