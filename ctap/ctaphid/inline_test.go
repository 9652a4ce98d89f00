package ctaphid_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

// The tests in this file cover requests that their host runs itself (Port.RunPending, through
// transport/inproc and Client): no hand-off between goroutines, the same CTAPHID behaviour.

// onPullStack reports whether the calling goroutine is running a request through RunPending.
func onPullStack() bool {
	buf := make([]byte, 1<<16)
	return strings.Contains(string(buf[:runtime.Stack(buf, false)]), "ctaphid.(*Port).RunPending")
}

func TestClientRunsRequestOnItsGoroutine(t *testing.T) {
	t.Parallel()
	inline := make(chan bool, 2)
	fh := &fakeHandler{cbor: func(_ context.Context, req []byte, _ func(byte)) []byte {
		inline <- onPullStack()
		return append([]byte{0}, req...)
	}}
	d := ctaphid.NewDevice(fh, testInfo, ctaphid.WithPullGrace(time.Hour))
	c := ctaphid.NewClient(inproc.Connect(d))
	for i := range 3 {
		resp, err := c.CBOR(context.Background(), []byte{4, 5})
		require.NoError(t, err)
		require.Equal(t, []byte{0, 4, 5}, resp)
		// The first request shows the connection pulls; from the second on it runs them.
		require.Equal(t, i > 0, <-inline, "request %d", i)
	}
}

// TestRunPendingKeepalivesInOrder: keepalives fired while the host's goroutine runs the handler
// reach the host before the response, stamped with the times they were sent.
func TestRunPendingKeepalivesInOrder(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	d, v := virtualDevice(fh, ctaphid.WithPullGrace(time.Hour))
	fh.cbor = func(ctx context.Context, _ []byte, setStatus func(byte)) []byte {
		_ = v.Sleep(ctx, ms(150))
		setStatus(ctaphid.StatusUPNeeded)
		_ = v.Sleep(ctx, ms(100))
		return []byte{0}
	}
	conn := inproc.Connect(d)
	t.Cleanup(func() { conn.Close() })
	h := &host{t: t, conn: conn}
	cid := h.init()
	require.False(t, conn.RunPending(), "nothing to run; from now on the host pulls")
	start := v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	require.True(t, conn.RunPending(), "the request waits for its host")
	require.False(t, conn.RunPending(), "and runs once")
	at, what := offsets(h.untilResponse(cid), start)
	require.Equal(t, []time.Duration{ms(100), ms(200), ms(250)}, at)
	require.Equal(t, [][2]byte{{ctaphid.CmdKeepalive, ctaphid.StatusProcessing},
		{ctaphid.CmdKeepalive, ctaphid.StatusUPNeeded}, {ctaphid.CmdCBOR, 0}}, what)
}

// TestRunPendingFallsBackToWorker: a host that never runs its request itself still gets it
// run, by a worker, after the grace period.
func TestRunPendingFallsBackToWorker(t *testing.T) {
	t.Parallel()
	started := make(chan bool, 1)
	fh := &fakeHandler{cbor: func(_ context.Context, _ []byte, _ func(byte)) []byte {
		started <- onPullStack()
		return []byte{0}
	}}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo, ctaphid.WithPullGrace(time.Millisecond)))
	cid := h.init()
	h.conn.RunPending() // the host says it pulls, then does not
	h.send(cid, ctaphid.CmdCBOR, []byte{4})
	require.False(t, <-started, "a worker ran it")
	h.expect(cid, ctaphid.CmdCBOR)
	require.False(t, h.conn.RunPending(), "nothing left to run")
}

// TestRunPendingOnlyItsOwnPort: another connection cannot run (or steal the answer of) a request
// it did not send.
func TestRunPendingOnlyItsOwnPort(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo, ctaphid.WithPullGrace(time.Hour))
	a, b := newHost(t, d), newHost(t, d)
	ca := a.init()
	a.conn.RunPending()
	b.conn.RunPending()
	a.send(ca, ctaphid.CmdCBOR, []byte{4})
	require.False(t, b.conn.RunPending())
	require.True(t, a.conn.RunPending())
	require.Equal(t, []byte{0, 4}, a.expect(ca, ctaphid.CmdCBOR))
}

// TestAbortedPendingRequest: a request resynced away (INIT) before its host ran it never reaches
// the handler, and the next one runs normally.
func TestAbortedPendingRequest(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo, ctaphid.WithPullGrace(time.Hour)))
	cid := h.init()
	h.conn.RunPending()
	h.send(cid, ctaphid.CmdCBOR, []byte{1})
	h.send(cid, ctaphid.CmdInit, make([]byte, 8)) // resync: the request is dropped
	h.expect(cid, ctaphid.CmdInit)
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	require.True(t, h.conn.RunPending())
	require.Equal(t, []byte{0, 2}, h.expect(cid, ctaphid.CmdCBOR))
	h.sync(cid)
	require.EqualValues(t, 1, fh.calls.Load(), "the dropped request never ran")
	require.False(t, fh.overlap.Load())
}

// TestClientContextEndsInlineRequest: a client whose context ends while its goroutine runs the
// request sends CANCEL, as it would while waiting, and returns the final response with ctx's error.
func TestClientContextEndsInlineRequest(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	inline := make(chan bool, 1)
	fh := &fakeHandler{cbor: func(ctx context.Context, req []byte, s func(byte)) []byte {
		if req[0] != 2 {
			return []byte{0}
		}
		inline <- onPullStack()
		return waitCancel(started)(ctx, req, s)
	}}
	c := ctaphid.NewClient(inproc.Connect(ctaphid.NewDevice(fh, testInfo, ctaphid.WithPullGrace(time.Hour))))
	_, err := c.Ping(context.Background(), nil)
	require.NoError(t, err)
	_, err = c.CBOR(context.Background(), []byte{9}) // shows that the connection pulls
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	resp, err := c.CBOR(ctx, []byte{2})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, resp)
	require.True(t, <-inline)
	_, err = c.Ping(context.Background(), []byte("in sync"))
	require.NoError(t, err)
}

// TestUnreadReportsAreDropped: a host that stops reading loses reports past the queue's bound,
// as hidraw drops them, and the key is not held up.
func TestUnreadReportsAreDropped(t *testing.T) {
	t.Parallel()
	h := newHost(t, ctaphid.NewDevice(&fakeHandler{}, testInfo))
	cid := h.init()
	for range 4200 {
		h.send(cid, ctaphid.CmdPing, []byte{1})
	}
	require.Equal(t, 4200-4096, h.conn.Dropped())
}
