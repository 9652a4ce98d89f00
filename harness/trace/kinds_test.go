package trace_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

// tracedKey opens an emulated key with policy pol and persona name, and a recorded client.
func tracedKey(t *testing.T, name, pol string) (*client.Client, *trace.Recorder, *bytes.Buffer) {
	t.Helper()
	p, err := persona.Builtin(name)
	require.NoError(t, err)
	up, err := user.ParsePolicy(pol)
	require.NoError(t, err)
	k, err := emulator.Open(emulator.Options{Persona: p, User: up})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	var buf bytes.Buffer
	rec, err := trace.NewRecorder(&buf, trace.Options{})
	require.NoError(t, err)
	conn := rec.Conn(k.Connect(), trace.Source{Transport: "inproc"})
	t.Cleanup(func() { _ = conn.Close() })
	hid := ctaphid.NewClient(conn)
	_, err = hid.Init(context.Background())
	require.NoError(t, err)
	return client.New(hid), rec, &buf
}

func lastExchange(t *testing.T, rec *trace.Recorder, buf *bytes.Buffer, command string) *trace.Record {
	t.Helper()
	require.NoError(t, rec.Close())
	_, recs := readAll(t, buf.Bytes())
	var found *trace.Record
	for _, x := range exchanges(recs) {
		if x.Request != nil && x.Request.Command == command {
			found = x
		}
	}
	require.NotNil(t, found, "no %s exchange", command)
	return found
}

func makeCredential() *ctap.MakeCredentialRequest {
	cdh := sha256.Sum256([]byte("kinds"))
	alg := int64(-7)
	return &ctap.MakeCredentialRequest{ClientDataHash: cdh[:], RP: &ctap.RPEntity{ID: "example.com"},
		User:             &ctap.UserEntity{ID: []byte("u1"), Name: "u1"},
		PubKeyCredParams: []ctap.CredentialParam{{Alg: &alg, Type: ctap.CredentialTypePublicKey}}}
}

func TestRecorderCountsKeepalives(t *testing.T) {
	t.Parallel()
	c, rec, buf := tracedKey(t, "default", "delay:500ms")
	_, err := c.MakeCredential(context.Background(), makeCredential())
	require.NoError(t, err)
	x := lastExchange(t, rec, buf, "authenticatorMakeCredential")
	require.GreaterOrEqual(t, x.Keepalives, 1, "a 500 ms wait for the user sends keepalives (every 100 ms)")
	require.Equal(t, "UPNEEDED", x.KeepaliveStatus)
	require.Equal(t, "CTAP2_OK", x.Response.Status)
	require.Greater(t, x.DurationUS, int64(300_000))
}

func TestRecorderSeesCancel(t *testing.T) {
	t.Parallel()
	c, rec, buf := tracedKey(t, "default", "manual") // the user never touches the key
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	_, err := c.MakeCredential(ctx, makeCredential())
	require.Error(t, err)
	x := lastExchange(t, rec, buf, "authenticatorMakeCredential")
	require.True(t, x.Cancelled, "the host's CTAPHID_CANCEL is on the exchange")
	require.Equal(t, "CTAP2_ERR_KEEPALIVE_CANCEL", x.Response.Status)
}

func TestRecorderDecodesU2F(t *testing.T) {
	t.Parallel()
	c, rec, buf := tracedKey(t, "u2f", "yes")
	app := sha256.Sum256([]byte("https://u2f.example"))
	chal := sha256.Sum256([]byte("challenge"))
	reg, err := c.Register(context.Background(), chal, app)
	require.NoError(t, err)
	_, err = c.Authenticate(context.Background(), u2f.ControlEnforceUserPresence, chal, app, reg.KeyHandle)
	require.NoError(t, err)
	x := lastExchange(t, rec, buf, "U2F_AUTHENTICATE")
	require.Equal(t, "MSG", x.Request.HID)
	require.Contains(t, x.Request.Summary, "control enforce-user-presence")
	require.Equal(t, "SW_NO_ERROR 9000", x.Response.Status)
	require.Contains(t, x.Response.Summary, "user presence 01, counter")
}
