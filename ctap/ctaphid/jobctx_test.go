package ctaphid

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestJobCtx: a request's context behaves as a cancellable context of the standard library:
// Done and Err after cancel, contexts derived from it (WithCancel, WithTimeout, AfterFunc)
// follow it through AfterFunc without a goroutine each, and it carries its channel.
func TestJobCtx(t *testing.T) {
	c := &jobCtx{cid: 0x01020304}
	require.NoError(t, c.Err())
	_, has := c.Deadline()
	require.False(t, has)
	cid, ok := Channel(c)
	require.True(t, ok)
	require.Equal(t, uint32(0x01020304), cid)

	child, stopChild := context.WithCancel(c)
	defer stopChild()
	timed, stopTimed := context.WithTimeout(c, time.Hour)
	defer stopTimed()
	fired := make(chan struct{})
	context.AfterFunc(c, func() { close(fired) })
	unregistered := false
	stop := context.AfterFunc(c, func() { unregistered = true })
	require.True(t, stop(), "stopped before the cancel")
	c.mu.Lock()
	require.Len(t, c.afters, 3, "WithCancel, WithTimeout and AfterFunc follow it through AfterFunc, not a goroutine each")
	c.mu.Unlock()
	cid, ok = Channel(child)
	require.True(t, ok, "the channel is visible through derived contexts")
	require.Equal(t, uint32(0x01020304), cid)

	done := c.Done()
	c.cancel()
	c.cancel() // idempotent
	<-done
	require.ErrorIs(t, c.Err(), context.Canceled)
	<-child.Done()
	require.ErrorIs(t, child.Err(), context.Canceled)
	<-timed.Done()
	<-fired
	require.False(t, unregistered)

	// Done made after the cancel is closed already; AfterFunc after it runs at once.
	late := &jobCtx{}
	late.cancel()
	<-late.Done()
	ran := make(chan struct{})
	require.False(t, late.AfterFunc(func() { close(ran) })())
	<-ran
}
