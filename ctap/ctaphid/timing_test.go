package ctaphid_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

// slack absorbs scheduler jitter on a loaded CI machine (single-P runs show 60 ms spikes); the median
// gap below holds the cadence itself to 100 ms. The timing tests are not parallel, so they compete
// only with other packages' test binaries.
const slack = 90 * time.Millisecond

func TestKeepaliveCadence(t *testing.T) {
	fh := &fakeHandler{cbor: func(ctx context.Context, _ []byte, setStatus func(byte)) []byte {
		time.Sleep(250 * time.Millisecond)
		setStatus(ctaphid.StatusUPNeeded)
		time.Sleep(300 * time.Millisecond)
		return []byte{0}
	}}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo))
	cid := h.init()
	start := time.Now()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	var tl timeline
	tl.collect(h, 900*time.Millisecond)

	require.NotEmpty(t, tl.events)
	last := tl.events[len(tl.events)-1]
	require.Equal(t, ctaphid.CmdCBOR, last.msg.Cmd, "the response comes last: no keepalive after it")
	prev := start
	sawUP := false
	for i, e := range tl.events {
		gap := e.at.Sub(prev)
		require.LessOrEqual(t, gap, ctaphid.DefaultKeepaliveInterval+slack, "silence of %v before message %d", gap, i)
		if e.msg.Cmd == ctaphid.CmdKeepalive {
			require.Equal(t, cid, e.msg.CID)
			require.Len(t, e.msg.Payload, 1)
			if i > 0 {
				require.GreaterOrEqual(t, gap, ctaphid.DefaultKeepaliveInterval-10*time.Millisecond, "keepalives too close")
			}
			sawUP = sawUP || e.msg.Payload[0] == ctaphid.StatusUPNeeded
			if e.at.Sub(start) < 200*time.Millisecond {
				require.Equal(t, ctaphid.StatusProcessing, e.msg.Payload[0])
			}
		}
		prev = e.at
	}
	require.True(t, sawUP, "setStatus(StatusUPNeeded) never showed in a keepalive")
	var gaps []time.Duration
	for i := 1; i < len(tl.events)-1; i++ {
		gaps = append(gaps, tl.events[i].at.Sub(tl.events[i-1].at))
	}
	slices.Sort(gaps)
	median := gaps[len(gaps)/2]
	require.InDelta(t, float64(ctaphid.DefaultKeepaliveInterval), float64(median), float64(25*time.Millisecond),
		"median keepalive gap %v", median)
	require.GreaterOrEqual(t, len(tl.events), 5)
}

func TestNoKeepaliveOutsideCBOR(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{msg: func(ctx context.Context, apdu []byte) []byte {
		time.Sleep(300 * time.Millisecond)
		return []byte{0x69, 0x85}
	}}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo))
	cid := h.init()
	h.expectSilence(250 * time.Millisecond) // idle: nothing
	h.send(cid, ctaphid.CmdMsg, []byte{0, 2, 3, 0})
	require.Equal(t, []byte{0x69, 0x85}, h.expect(cid, ctaphid.CmdMsg)) // the first message is the answer
	h.send(cid, ctaphid.CmdCBOR, []byte{4})                             // fast CBOR: answered before any keepalive
	h.expect(cid, ctaphid.CmdCBOR)
	h.expectSilence(250 * time.Millisecond)
}

func TestCancelLatency(t *testing.T) {
	started := make(chan struct{}, 1)
	fh := &fakeHandler{cbor: waitCancel(started)}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo))
	cid := h.init()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	<-started
	time.Sleep(150 * time.Millisecond) // let a keepalive go out first
	h.send(0x77777777, ctaphid.CmdCancel, nil)
	h.send(cid, ctaphid.CmdCancel, nil)
	sent := time.Now()
	for {
		msg, ok := h.recv(time.Second)
		require.True(t, ok, "no response after CANCEL")
		if msg.Cmd == ctaphid.CmdKeepalive {
			require.Equal(t, []byte{ctaphid.StatusUPNeeded}, msg.Payload)
			continue
		}
		require.Equal(t, ctaphid.CmdCBOR, msg.Cmd)
		require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, msg.Payload)
		break
	}
	require.Less(t, time.Since(sent), 50*time.Millisecond)
}

func TestClientCancel(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	d := ctaphid.NewDevice(&fakeHandler{cbor: waitCancel(started)}, testInfo)
	var statuses []byte
	c := ctaphid.NewClient(inproc.Connect(d), ctaphid.WithKeepalive(func(s byte) { statuses = append(statuses, s) }))

	// Client.Cancel from another goroutine.
	go func() {
		<-started
		time.Sleep(250 * time.Millisecond) // past the first keepalive
		if err := c.Cancel(); err != nil {
			t.Error(err)
		}
	}()
	resp, err := c.CBOR(context.Background(), []byte{2})
	require.NoError(t, err)
	require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, resp)
	require.Contains(t, statuses, ctaphid.StatusUPNeeded)

	// Context cancellation sends CANCEL and reads the final response.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	t0 := time.Now()
	resp, err = c.CBOR(ctx, []byte{2})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, []byte{byte(ctap.ErrKeepaliveCancel)}, resp)
	require.Less(t, time.Since(t0), time.Second)

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

func TestWithoutKeepaliveStaysSilent(t *testing.T) {
	fh := &fakeHandler{cbor: func(ctx context.Context, _ []byte, _ func(byte)) []byte {
		time.Sleep(300 * time.Millisecond)
		return []byte{0}
	}}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo, ctaphid.WithoutKeepalive()))
	cid := h.init()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	var tl timeline
	tl.collect(h, 600*time.Millisecond)
	require.Len(t, tl.events, 1, "only the response, no keepalive")
	require.Equal(t, ctaphid.CmdCBOR, tl.events[0].msg.Cmd)
}
