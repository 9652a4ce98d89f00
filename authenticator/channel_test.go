package authenticator

import (
	"context"
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

// TestGetNextAssertionStaysOnItsChannel: two hosts share a key through CTAPHID (two hidraw
// readers, two socket connections). The second may not collect the rest of the first one's
// getAssertion — the other accounts' user IDs and names, signed over the first host's
// clientDataHash — and trying leaves the first host's sequence intact.
func TestGetNextAssertionStaysOnItsChannel(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, u := range []string{"a", "b", "c"} {
		k.coreMake(makeCredReq("example.com", []byte(u), true))
	}
	d := ctaphid.NewDevice(k.Authenticator, k.DeviceInfo(), ctaphid.WithClock(k.clock))
	owner, other := ctaphid.NewClient(inproc.Connect(d)), ctaphid.NewClient(inproc.Connect(d))
	call := func(c *ctaphid.Client, cmd ctap.Command, req any) ctap.Status {
		t.Helper()
		msg := []byte{byte(cmd)}
		if req != nil {
			body, err := ctap.Marshal(req)
			require.NoError(t, err)
			msg = append(msg, body...)
		}
		resp, err := c.CBOR(context.Background(), msg)
		require.NoError(t, err)
		require.NotEmpty(t, resp)
		return ctap.Status(resp[0])
	}
	require.Equal(t, ctap.StatusOK, call(owner, ctap.CmdGetAssertion, gaReq("example.com")))
	require.Equal(t, ctap.ErrNotAllowed, call(other, ctap.CmdGetNextAssertion, nil),
		"getNextAssertion from another channel")
	require.Equal(t, ctap.StatusOK, call(owner, ctap.CmdGetNextAssertion, nil), "the owner continues")
	require.Equal(t, ctap.StatusOK, call(owner, ctap.CmdGetNextAssertion, nil))
	require.Equal(t, ctap.ErrNotAllowed, call(owner, ctap.CmdGetNextAssertion, nil), "nothing left")
}
