package authenticator

import (
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

func TestReset(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	rc := k.coreMake(makeCredReq("example.com", []byte("bob"), true))
	require.Equal(t, ctap.StatusOK, k.setPIN(2, "1234"))
	c := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	_, ad := k.coreAssert(gaReq("example.com", c.id), &c.pub)

	k.clock.Advance(11 * time.Second)
	st, _ := k.call(ctap.CmdReset, nil)
	require.Equal(t, ctap.ErrNotAllowed, st, "outside the window")

	require.NoError(t, k.PowerCycle())
	for _, tc := range []struct {
		policy user.Policy
		want   ctap.Status
	}{{user.Fixed(user.No), ctap.ErrOperationDenied}, {user.Fixed(user.Timeout), ctap.ErrUserActionTimeout}} {
		k.user.Set(tc.policy)
		st, _ = k.call(ctap.CmdReset, nil)
		require.Equal(t, tc.want, st)
	}
	require.True(t, k.info().Options["clientPin"], "a refused reset wipes nothing")

	k.user.Set(user.Always)
	asked := k.user.Asked()
	k.clock.Advance(9 * time.Second)
	st, _ = k.call(ctap.CmdReset, nil)
	require.Equal(t, ctap.StatusOK, st)
	require.Equal(t, asked+1, k.user.Asked())

	gi := k.info()
	require.False(t, gi.Options["clientPin"])
	require.Equal(t, uint64(k.p.ResidentCapacity), *gi.RemainingDiscoverableCredentials)
	for _, id := range [][]byte{c.id, rc.id} {
		st, _ = k.call(ctap.CmdGetAssertion, gaReq("example.com", id))
		require.Equal(t, ctap.ErrNoCredentials, st, "old credentials are gone (new master secret)")
	}
	c2 := k.coreMake(makeCredReq("example.com", []byte("alice"), false))
	_, ad2 := k.coreAssert(gaReq("example.com", c2.id), &c2.pub)
	require.Greater(t, ad2.SignCount, ad.SignCount, "the counter never goes back")

	// The window is measured from power-up, not from the reset.
	k.clock.Advance(2 * time.Second)
	st, _ = k.call(ctap.CmdReset, nil)
	require.Equal(t, ctap.ErrNotAllowed, st)
}

func TestResetCancel(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default", func(p *persona.Persona) { p.Quirks.ResetWindowSeconds = 60 })
	k.clock.Advance(30 * time.Second)
	st, _ := k.callCtx(k.cancelWhenAsked(), ctap.CmdReset, nil)
	require.Equal(t, ctap.ErrKeepaliveCancel, st)
}

func TestSelection(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	for _, tc := range []struct {
		policy user.Policy
		want   ctap.Status
	}{{user.Always, ctap.StatusOK}, {user.Fixed(user.No), ctap.ErrOperationDenied}, {user.Fixed(user.Timeout), ctap.ErrUserActionTimeout}} {
		k.user.Set(tc.policy)
		st, _ := k.call(ctap.CmdSelection, nil)
		require.Equal(t, tc.want, st)
	}
	st, _ := newTestKey(t, "ctap20").call(ctap.CmdSelection, nil)
	require.Equal(t, ctap.ErrInvalidCommand, st)
}
