package ctaphid_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

// The tests in this file run the device on a virtual clock: the handler's work moves the clock,
// keepalives fire at their exact deadlines, and each message carries the time it was sent, so the
// cadence is checked to the nanosecond without any wall time passing.

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// offsets returns each event's time after start, and its command and first payload byte.
func offsets(evs []event, start time.Time) (at []time.Duration, what [][2]byte) {
	for _, e := range evs {
		var b byte
		if len(e.msg.Payload) > 0 {
			b = e.msg.Payload[0]
		}
		at = append(at, e.at.Sub(start))
		what = append(what, [2]byte{e.msg.Cmd, b})
	}
	return at, what
}

func TestKeepaliveCadence(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	d, v := virtualDevice(fh)
	fh.cbor = func(ctx context.Context, _ []byte, setStatus func(byte)) []byte {
		_ = v.Sleep(ctx, ms(250))
		setStatus(ctaphid.StatusUPNeeded)
		_ = v.Sleep(ctx, ms(300))
		return []byte{0}
	}
	h := newHost(t, d)
	cid := h.init()
	start := v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	at, what := offsets(h.untilResponse(cid), start)

	ka, resp := ctaphid.CmdKeepalive, ctaphid.CmdCBOR
	require.Equal(t, []time.Duration{ms(100), ms(200), ms(300), ms(400), ms(500), ms(550)}, at,
		"a keepalive every 100 ms from the request, the response when the handler returns")
	require.Equal(t, [][2]byte{
		{ka, ctaphid.StatusProcessing}, {ka, ctaphid.StatusProcessing},
		{ka, ctaphid.StatusUPNeeded}, {ka, ctaphid.StatusUPNeeded}, {ka, ctaphid.StatusUPNeeded},
		{resp, 0},
	}, what, "setStatus shows in the keepalives that follow it")
	v.Advance(time.Second)
	h.sync(cid) // no keepalive after the response
}

// TestSlowKeyTimeline is what a host model on the virtual clock sees of a key that works 1.5 s per
// request: fifteen keepalives 100 ms apart, or, from a key that sends none, one response 1.5 s
// after the request and silence before it (what Windows gives up on after about half a second).
func TestSlowKeyTimeline(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		opts   []ctaphid.Option
		wantKA int
	}{
		{name: "keepalive", wantKA: 15},
		{name: "no keepalive", opts: []ctaphid.Option{ctaphid.WithoutKeepalive()}, wantKA: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fh := &fakeHandler{}
			d, v := virtualDevice(fh, tc.opts...)
			fh.cbor = sleeping(v, ms(1500))
			h := newHost(t, d)
			cid := h.init()
			start := v.Now()
			h.send(cid, ctaphid.CmdCBOR, []byte{2})
			evs := h.untilResponse(cid)
			require.Len(t, evs, tc.wantKA+1)
			for i, e := range evs[:tc.wantKA] {
				require.Equal(t, ctaphid.CmdKeepalive, e.msg.Cmd)
				require.Equal(t, ms(100*(i+1)), e.at.Sub(start))
			}
			last := evs[tc.wantKA]
			require.Equal(t, ctaphid.CmdCBOR, last.msg.Cmd)
			require.Equal(t, ms(1500), last.at.Sub(start))
		})
	}
}

func TestNoKeepaliveOutsideCBOR(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	d, v := virtualDevice(fh)
	fh.msg = func(ctx context.Context, apdu []byte) []byte {
		_ = v.Sleep(ctx, ms(300))
		return []byte{0x69, 0x85}
	}
	h := newHost(t, d)
	cid := h.init()
	v.Advance(time.Second)
	h.sync(cid) // idle: nothing
	h.send(cid, ctaphid.CmdMsg, []byte{0, 2, 3, 0})
	require.Equal(t, []byte{0x69, 0x85}, h.expect(cid, ctaphid.CmdMsg)) // the first message is the answer
	h.send(cid, ctaphid.CmdCBOR, []byte{4})                             // fast CBOR: answered before any keepalive
	h.expect(cid, ctaphid.CmdCBOR)
	v.Advance(time.Second)
	h.sync(cid)
}

func TestCancelReachesWaitingHandler(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	d, v := virtualDevice(&fakeHandler{cbor: waitCancel(started)})
	h := newHost(t, d)
	cid := h.init()
	start := v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	<-started
	v.Advance(ms(150)) // a keepalive goes out first
	h.send(0x77777777, ctaphid.CmdCancel, nil)
	h.send(cid, ctaphid.CmdCancel, nil)
	at, what := offsets(h.untilResponse(cid), start)
	require.Equal(t, []time.Duration{ms(100), ms(150)}, at, "the response follows the CANCEL at once")
	require.Equal(t, [][2]byte{{ctaphid.CmdKeepalive, ctaphid.StatusUPNeeded},
		{ctaphid.CmdCBOR, byte(ctap.ErrKeepaliveCancel)}}, what)
}

func TestClientCancel(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	d, v := virtualDevice(&fakeHandler{cbor: waitCancel(started)})
	var statuses []byte
	c := ctaphid.NewClient(inproc.Connect(d), ctaphid.WithKeepalive(func(s byte) { statuses = append(statuses, s) }))

	// Client.Cancel from another goroutine, past the first keepalives.
	go func() {
		<-started
		v.Advance(ms(250))
		if err := c.Cancel(); err != nil {
			t.Error(err)
		}
	}()
	resp, err := c.CBOR(context.Background(), []byte{2})
	require.NoError(t, err)
	require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, resp)
	require.Equal(t, []byte{ctaphid.StatusUPNeeded, ctaphid.StatusUPNeeded}, statuses)

	// Context cancellation sends CANCEL and reads the final response.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	resp, err = c.CBOR(ctx, []byte{2})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, resp)

	// The channel is in sync afterwards.
	_, err = c.Ping(context.Background(), []byte("after"))
	require.NoError(t, err)
	require.NoError(t, c.Cancel(), "Cancel with nothing in flight is a no-op")
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	info := testInfo
	info.Capabilities = ctaphid.CapCBOR | ctaphid.CapNMsg
	d := ctaphid.NewDevice(&fakeHandler{}, info)
	c := ctaphid.NewClient(inproc.Connect(d))
	got, err := c.Init(context.Background())
	require.NoError(t, err)
	require.Equal(t, c.CID(), got.CID)
	require.Equal(t, ctaphid.InitInfo{CID: got.CID, ProtocolVersion: 2, Major: 5, Minor: 4, Build: 3,
		Capabilities: info.Capabilities}, got)

	_, err = c.Msg(context.Background(), []byte{0, 3, 0, 0})
	var he *ctaphid.HIDError
	require.True(t, errors.As(err, &he))
	require.Equal(t, ctaphid.ErrInvalidCmd, he.Code)
	require.ErrorIs(t, c.Wink(context.Background()), ctaphid.ErrInvalidCmd)
	require.ErrorIs(t, c.Lock(context.Background(), 11), ctaphid.ErrInvalidPar)
	require.NoError(t, c.Lock(context.Background(), 2))
	require.NoError(t, c.Lock(context.Background(), 0))
}

func TestTimingAtRunTime(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	d, v := virtualDevice(fh)
	fh.cbor = sleeping(v, ms(1000))
	require.Equal(t, ctaphid.Timing{MessageTimeout: ctaphid.DefaultMessageTimeout,
		KeepaliveInterval: ctaphid.DefaultKeepaliveInterval}, d.Timing())
	h := newHost(t, d)
	cid := h.init()

	d.SetTiming(ctaphid.Timing{KeepaliveInterval: ms(400)})
	start := v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	at, _ := offsets(h.untilResponse(cid), start)
	require.Equal(t, []time.Duration{ms(400), ms(800), ms(1000)}, at)

	d.SetTiming(ctaphid.Timing{NoKeepalive: true})
	require.Equal(t, ctaphid.DefaultKeepaliveInterval, d.Timing().KeepaliveInterval, "zero means the default")
	start = v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	at, _ = offsets(h.untilResponse(cid), start)
	require.Equal(t, []time.Duration{ms(1000)}, at, "only the response, no keepalive")
}

// TestTimersArmedByEarlierRequests: the device's timers are never stopped, so one armed for an
// earlier request or message fires first; keepalives and the message deadline must still come
// exactly when due for the current one.
func TestTimersArmedByEarlierRequests(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	d, v := virtualDevice(fh, ctaphid.WithMessageTimeout(ms(500)))
	h := newHost(t, d)
	cid, other := h.init(), h.init()

	h.send(cid, ctaphid.CmdCBOR, []byte{4}) // quick: arms the keepalive timer for 100 ms from now
	h.expect(cid, ctaphid.CmdCBOR)
	h.write(rawReport(cid, ctaphid.CmdPing, 0, 100)) // arms the message timer for 500 ms from now
	h.write(rawReport(cid, 0))
	h.expect(cid, ctaphid.CmdPing)
	v.Advance(ms(30))

	fh.cbor = sleeping(v, ms(250))
	start := v.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	at, _ := offsets(h.untilResponse(cid), start)
	require.Equal(t, []time.Duration{ms(100), ms(200), ms(250)}, at, "keepalives from this request's start")

	v.Advance(ms(200)) // the message timer armed for the PING fires now, 480 ms later: nothing due
	start = v.Now()
	h.write(rawReport(cid, ctaphid.CmdPing, 0, 100))
	v.Advance(ms(499))
	h.send(other, ctaphid.CmdPing, []byte{1})
	h.expectError(other, ctaphid.ErrChannelBusy) // the message is still being received
	v.Advance(ms(1))
	ev, ok := h.recvAt(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, []byte{byte(ctaphid.ErrMsgTimeout)}, ev.msg.Payload)
	require.Equal(t, ms(500), ev.at.Sub(start))
}
