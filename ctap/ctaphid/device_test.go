package ctaphid_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

func TestDeviceErrors(t *testing.T) {
	t.Parallel()
	const unallocated = 0x55555555
	tests := []struct {
		name string
		caps byte
		// send writes the request; cid is an allocated channel.
		send    func(h *host, cid uint32)
		errCID  func(cid uint32) uint32 // the channel the error arrives on (default: cid)
		wantErr ctaphid.ErrorCode
	}{
		{name: "unknown command", send: func(h *host, cid uint32) { h.send(cid, 0xC0, nil) },
			wantErr: ctaphid.ErrInvalidCmd},
		{name: "host sends KEEPALIVE", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdKeepalive, []byte{1}) },
			wantErr: ctaphid.ErrInvalidCmd},
		{name: "host sends ERROR", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdError, []byte{1}) },
			wantErr: ctaphid.ErrInvalidCmd},
		{name: "CBOR without CapCBOR", caps: ctaphid.CapWink,
			send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdCBOR, []byte{4}) }, wantErr: ctaphid.ErrInvalidCmd},
		{name: "MSG with NMSG", caps: allCaps | ctaphid.CapNMsg,
			send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdMsg, []byte{0, 3, 0, 0}) }, wantErr: ctaphid.ErrInvalidCmd},
		{name: "WINK without CapWink", caps: ctaphid.CapCBOR,
			send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdWink, nil) }, wantErr: ctaphid.ErrInvalidCmd},
		{name: "empty CBOR", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdCBOR, nil) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "empty MSG", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdMsg, nil) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "WINK with data", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdWink, []byte{1}) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "INIT nonce of 7 bytes", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdInit, make([]byte, 7)) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "broadcast INIT nonce of 9 bytes",
			send:    func(h *host, cid uint32) { h.send(ctaphid.BroadcastCID, ctaphid.CmdInit, make([]byte, 9)) },
			errCID:  func(uint32) uint32 { return ctaphid.BroadcastCID },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "length over 7609", send: func(h *host, cid uint32) { h.write(rawReport(cid, ctaphid.CmdPing, 0x1d, 0xba)) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "LOCK without argument", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdLock, nil) },
			wantErr: ctaphid.ErrInvalidLen},
		{name: "LOCK over 10 s", send: func(h *host, cid uint32) { h.send(cid, ctaphid.CmdLock, []byte{11}) },
			wantErr: ctaphid.ErrInvalidPar},
		{name: "channel 0", send: func(h *host, cid uint32) { h.send(0, ctaphid.CmdPing, []byte{1}) },
			errCID: func(uint32) uint32 { return 0 }, wantErr: ctaphid.ErrInvalidChannel},
		{name: "INIT on channel 0", send: func(h *host, cid uint32) { h.send(0, ctaphid.CmdInit, make([]byte, 8)) },
			errCID: func(uint32) uint32 { return 0 }, wantErr: ctaphid.ErrInvalidChannel},
		{name: "unallocated channel", send: func(h *host, cid uint32) { h.send(unallocated, ctaphid.CmdPing, []byte{1}) },
			errCID: func(uint32) uint32 { return unallocated }, wantErr: ctaphid.ErrInvalidChannel},
		{name: "INIT on unallocated channel",
			send:   func(h *host, cid uint32) { h.send(unallocated, ctaphid.CmdInit, make([]byte, 8)) },
			errCID: func(uint32) uint32 { return unallocated }, wantErr: ctaphid.ErrInvalidChannel},
		{name: "PING on broadcast",
			send:    func(h *host, cid uint32) { h.send(ctaphid.BroadcastCID, ctaphid.CmdPing, []byte{1}) },
			errCID:  func(uint32) uint32 { return ctaphid.BroadcastCID },
			wantErr: ctaphid.ErrInvalidChannel},
		{name: "continuation out of sequence", send: func(h *host, cid uint32) {
			h.write(rawReport(cid, ctaphid.CmdPing, 0, 100))
			h.write(rawReport(cid, 1))
		}, wantErr: ctaphid.ErrInvalidSeq},
		{name: "new request mid-message", send: func(h *host, cid uint32) {
			h.write(rawReport(cid, ctaphid.CmdPing, 0, 100))
			h.write(rawReport(cid, ctaphid.CmdPing, 0, 1))
		}, wantErr: ctaphid.ErrInvalidSeq},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			info := testInfo
			if tc.caps != 0 {
				info.Capabilities = tc.caps
			}
			h := newHost(t, ctaphid.NewDevice(&fakeHandler{}, info))
			cid := h.init()
			tc.send(h, cid)
			want := cid
			if tc.errCID != nil {
				want = tc.errCID(cid)
			}
			h.expectError(want, tc.wantErr)
			// The device is usable afterwards and nothing else was sent.
			h.send(cid, ctaphid.CmdPing, []byte("ok"))
			require.Equal(t, []byte("ok"), h.expect(cid, ctaphid.CmdPing))
		})
	}
}

func TestInitAllocatesAndResyncs(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	h := newHost(t, d)
	nonce := []byte{9, 8, 7, 6, 5, 4, 3, 2}
	h.send(ctaphid.BroadcastCID, ctaphid.CmdInit, nonce)
	p := h.expect(ctaphid.BroadcastCID, ctaphid.CmdInit)
	cid := binary.BigEndian.Uint32(p[8:])
	require.Equal(t, append(append([]byte{}, nonce...), p[8], p[9], p[10], p[11], 2, 5, 4, 3, allCaps), p)
	require.NotZero(t, cid)
	require.NotEqual(t, ctaphid.BroadcastCID, cid)

	other := h.init()
	require.NotEqual(t, cid, other, "each INIT on broadcast allocates a fresh channel")

	// INIT on an allocated channel answers on that channel with the same CID.
	h.send(cid, ctaphid.CmdInit, nonce)
	p = h.expect(cid, ctaphid.CmdInit)
	require.Equal(t, cid, binary.BigEndian.Uint32(p[8:]))
}

func TestPingAndMsgAndWink(t *testing.T) {
	t.Parallel()
	fh := &fakeHandler{}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo))
	cid := h.init()
	h.send(cid, ctaphid.CmdMsg, []byte{0, 3, 0, 0})
	require.Equal(t, []byte{0, 3, 0, 0, 0x90, 0}, h.expect(cid, ctaphid.CmdMsg))
	h.send(cid, ctaphid.CmdWink, nil)
	require.Empty(t, h.expect(cid, ctaphid.CmdWink))
	require.EqualValues(t, 1, fh.winks.Load())
	h.send(cid, ctaphid.CmdCBOR, []byte{4})
	require.Equal(t, []byte{0, 4}, h.expect(cid, ctaphid.CmdCBOR))
	h.send(cid, ctaphid.CmdPing, nil)
	require.Empty(t, h.expect(cid, ctaphid.CmdPing))
}

func TestChannelBusyAcrossPorts(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	fh := &fakeHandler{cbor: func(ctx context.Context, req []byte, _ func(byte)) []byte {
		started <- struct{}{}
		<-release
		return []byte{0}
	}}
	d := ctaphid.NewDevice(fh, testInfo)
	a, b := newHost(t, d), newHost(t, d)
	ca, cb := a.init(), b.init()
	a.send(ca, ctaphid.CmdCBOR, []byte{4})
	<-started
	// INIT still works while busy; any other request from another channel is refused at once.
	cb2 := b.init()
	b.send(cb, ctaphid.CmdPing, []byte{1})
	b.expectError(cb, ctaphid.ErrChannelBusy)
	b.send(cb2, ctaphid.CmdCBOR, []byte{4})
	b.expectError(cb2, ctaphid.ErrChannelBusy)
	// A second request on the busy channel itself is refused too.
	a.send(ca, ctaphid.CmdPing, []byte{1})
	a.expectError(ca, ctaphid.ErrChannelBusy)
	close(release)
	require.Equal(t, []byte{0}, a.expect(ca, ctaphid.CmdCBOR))
	b.sync(cb) // the response went only to port a
}

func TestInterleavedFragmentsOnTwoChannels(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	a, b := newHost(t, d), newHost(t, d)
	ca, cb := a.init(), b.init()
	pa, _ := ctaphid.Fragment(ca, ctaphid.CmdPing, make([]byte, 200))
	pb, _ := ctaphid.Fragment(cb, ctaphid.CmdPing, make([]byte, 200))
	a.write(pa[0][:])
	b.write(pb[0][:]) // a's message is being received: b is busy-refused
	b.expectError(cb, ctaphid.ErrChannelBusy)
	for i := 1; i < len(pa); i++ {
		b.write(pb[i][:]) // stray continuations of the refused message are ignored
		a.write(pa[i][:])
	}
	require.Len(t, a.expect(ca, ctaphid.CmdPing), 200)
	b.sync(cb)
}

func TestMessageTimeout(t *testing.T) {
	t.Parallel()
	d, v := virtualDevice(&fakeHandler{}, ctaphid.WithMessageTimeout(60*time.Millisecond))
	h := newHost(t, d)
	cid := h.init()
	start := v.Now()
	h.write(rawReport(cid, ctaphid.CmdPing, 0, 200))
	v.Advance(30 * time.Millisecond)
	h.write(rawReport(cid, 0)) // a packet in time does not extend the message's deadline
	v.Advance(time.Second)
	ev, ok := h.recvAt(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, ctaphid.Message{CID: cid, Cmd: ctaphid.CmdError, Payload: []byte{byte(ctaphid.ErrMsgTimeout)}}, ev.msg)
	require.Equal(t, 60*time.Millisecond, ev.at.Sub(start), "60 ms after the first packet")
	// The channel is free again and the late packet is ignored.
	h.write(rawReport(cid, 1))
	h.send(cid, ctaphid.CmdPing, []byte{7})
	require.Equal(t, []byte{7}, h.expect(cid, ctaphid.CmdPing))
}

// TestSlowDripIsCutOff: a host that sends a continuation packet every 0.7 s, just inside any
// per-packet timer, held the device for ~90 s per message (every other channel BUSY). The whole
// message now has DefaultMessageTimeout from its first packet.
func TestSlowDripIsCutOff(t *testing.T) {
	t.Parallel()
	d, v := virtualDevice(&fakeHandler{})
	slow, other := newHost(t, d), newHost(t, d)
	cid, ocid := slow.init(), other.init()
	start := v.Now()
	slow.write(rawReport(cid, ctaphid.CmdPing, 0x1D, 0xB9)) // 7609 bytes: 129 packets
	seq := byte(0)
	for v.Now().Sub(start) < ctaphid.DefaultMessageTimeout-700*time.Millisecond {
		v.Advance(700 * time.Millisecond)
		slow.write(rawReport(cid, seq))
		seq++
	}
	other.send(ocid, ctaphid.CmdPing, []byte{1})
	other.expectError(ocid, ctaphid.ErrChannelBusy) // the message is still within its deadline
	v.Advance(700 * time.Millisecond)
	ev, ok := slow.recvAt(2 * time.Second)
	require.True(t, ok)
	require.Equal(t, ctaphid.Message{CID: cid, Cmd: ctaphid.CmdError, Payload: []byte{byte(ctaphid.ErrMsgTimeout)}}, ev.msg)
	require.Equal(t, ctaphid.DefaultMessageTimeout, ev.at.Sub(start), "the deadline counts from the first packet")
	slow.write(rawReport(cid, seq)) // the drip goes on, ignored
	other.send(ocid, ctaphid.CmdPing, []byte{2})
	require.Equal(t, []byte{2}, other.expect(ocid, ctaphid.CmdPing), "the device is free for others")
	slow.sync(cid)
}

func TestDefaultMessageTimeout(t *testing.T) {
	t.Parallel()
	require.Equal(t, 3*time.Second, ctaphid.DefaultMessageTimeout)
	require.Equal(t, 100*time.Millisecond, ctaphid.DefaultKeepaliveInterval)
}

// TestChannelIDsAreRandom: INIT hands out channel IDs nobody can predict. Sequential IDs let a
// second host take the channel allocated just before its own as the first host's.
func TestChannelIDsAreRandom(t *testing.T) {
	t.Parallel()
	h := newHost(t, ctaphid.NewDevice(&fakeHandler{}, testInfo))
	seen := map[uint32]bool{}
	prev := h.init()
	seen[prev] = true
	near := 0
	for range 64 {
		cid := h.init()
		require.False(t, seen[cid], "channel %08x handed out twice", cid)
		seen[cid] = true
		if d := int64(cid) - int64(prev); d >= -256 && d <= 256 {
			near++
		}
		prev = cid
	}
	require.Zero(t, near, "consecutive channel IDs close to each other")
}

// TestCancelFromAnotherHostCannotGuess: host B allocates its channel right after host A and
// sends CANCEL (and INIT) on the channels next to its own. A's request keeps waiting for the user.
func TestCancelFromAnotherHostCannotGuess(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{})
	fh := &fakeHandler{cbor: func(ctx context.Context, req []byte, s func(byte)) []byte {
		r := waitCancel(started)(ctx, req, s)
		close(cancelled)
		return r
	}}
	d := ctaphid.NewDevice(fh, testInfo, ctaphid.WithKeepaliveInterval(time.Hour))
	a, b := newHost(t, d), newHost(t, d)
	ca := a.init()
	a.send(ca, ctaphid.CmdCBOR, []byte{2})
	<-started
	cb := b.init()
	for delta := uint32(1); delta <= 16; delta++ {
		b.send(cb-delta, ctaphid.CmdCancel, nil)
		b.send(cb+delta, ctaphid.CmdCancel, nil)
		b.send(cb-delta, ctaphid.CmdInit, make([]byte, 8))
		b.expectError(cb-delta, ctaphid.ErrInvalidChannel)
	}
	b.sync(cb)
	select {
	case <-cancelled:
		t.Fatal("another host cancelled the request")
	default:
	}
	a.send(ca, ctaphid.CmdCancel, nil) // its own host still can
	require.Equal(t, []byte{0x2D}, a.expect(ca, ctaphid.CmdCBOR))
}

// TestHandlerKnowsItsChannel: the handler's context carries the request's channel (Channel).
func TestHandlerKnowsItsChannel(t *testing.T) {
	t.Parallel()
	got := make(chan uint32, 2)
	fh := &fakeHandler{
		cbor: func(ctx context.Context, _ []byte, _ func(byte)) []byte {
			cid, ok := ctaphid.Channel(ctx)
			require.True(t, ok)
			got <- cid
			return []byte{0}
		},
		msg: func(ctx context.Context, _ []byte) []byte {
			cid, _ := ctaphid.Channel(ctx)
			got <- cid
			return []byte{0x90, 0}
		},
	}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo))
	c1, c2 := h.init(), h.init()
	h.send(c1, ctaphid.CmdCBOR, []byte{4})
	h.expect(c1, ctaphid.CmdCBOR)
	h.send(c2, ctaphid.CmdMsg, []byte{0, 1, 0, 0})
	h.expect(c2, ctaphid.CmdMsg)
	require.Equal(t, c1, <-got)
	require.Equal(t, c2, <-got)
	_, ok := ctaphid.Channel(context.Background())
	require.False(t, ok)
}

func TestPowerCycleDropsChannels(t *testing.T) {
	t.Parallel()
	cancelled := make(chan struct{})
	started := make(chan struct{}, 1)
	var once sync.Once
	fh := &fakeHandler{cbor: func(ctx context.Context, req []byte, _ func(byte)) []byte {
		first := false
		once.Do(func() { first = true })
		if !first {
			return append([]byte{0}, req...)
		}
		started <- struct{}{}
		<-ctx.Done()
		close(cancelled)
		return []byte{0x2D}
	}}
	d := ctaphid.NewDevice(fh, testInfo)
	h := newHost(t, d)
	cid := h.init()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	<-started
	d.PowerCycle()
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Fatal("PowerCycle did not cancel the request in flight")
	}
	h.send(cid, ctaphid.CmdPing, []byte{1})
	h.expectError(cid, ctaphid.ErrInvalidChannel) // the aborted request sent nothing before this
	fresh := h.init()
	require.NotEqual(t, cid, fresh)
	h.send(fresh, ctaphid.CmdCBOR, []byte{4})
	h.expect(fresh, ctaphid.CmdCBOR)
}

func TestLock(t *testing.T) {
	t.Parallel()
	d, v := virtualDevice(&fakeHandler{})
	a, b := newHost(t, d), newHost(t, d)
	ca, cb := a.init(), b.init()
	a.send(ca, ctaphid.CmdLock, []byte{1})
	require.Empty(t, a.expect(ca, ctaphid.CmdLock))
	b.send(cb, ctaphid.CmdPing, []byte{1})
	b.expectError(cb, ctaphid.ErrChannelBusy)
	b.send(ctaphid.BroadcastCID, ctaphid.CmdInit, make([]byte, 8))
	b.expectError(ctaphid.BroadcastCID, ctaphid.ErrChannelBusy)
	a.send(ca, ctaphid.CmdPing, []byte{2}) // the owner goes on
	require.Equal(t, []byte{2}, a.expect(ca, ctaphid.CmdPing))
	b.send(cb, ctaphid.CmdLock, []byte{0}) // another channel cannot release it
	b.expectError(cb, ctaphid.ErrChannelBusy)
	a.send(ca, ctaphid.CmdLock, []byte{0})
	a.expect(ca, ctaphid.CmdLock)
	b.send(cb, ctaphid.CmdPing, []byte{3})
	require.Equal(t, []byte{3}, b.expect(cb, ctaphid.CmdPing))

	// A lock expires by itself.
	a.send(ca, ctaphid.CmdLock, []byte{1})
	a.expect(ca, ctaphid.CmdLock)
	v.Advance(999 * time.Millisecond)
	b.send(cb, ctaphid.CmdPing, []byte{4})
	b.expectError(cb, ctaphid.ErrChannelBusy)
	v.Advance(time.Millisecond)
	b.send(cb, ctaphid.CmdPing, []byte{4})
	require.Equal(t, []byte{4}, b.expect(cb, ctaphid.CmdPing))
}

func TestCancelHasNoResponse(t *testing.T) {
	t.Parallel()
	h := newHost(t, ctaphid.NewDevice(&fakeHandler{}, testInfo))
	cid := h.init()
	h.send(cid, ctaphid.CmdCancel, nil) // nothing in flight
	h.send(0x12345678, ctaphid.CmdCancel, nil)
	h.sync(cid)
}

func TestResyncAbortsRequest(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	fh := &fakeHandler{cbor: waitCancel(started)}
	h := newHost(t, ctaphid.NewDevice(fh, testInfo, ctaphid.WithKeepaliveInterval(time.Hour)))
	cid := h.init()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	<-started
	nonce := []byte{1, 1, 1, 1, 2, 2, 2, 2}
	h.send(cid, ctaphid.CmdInit, nonce)
	p := h.expect(cid, ctaphid.CmdInit)
	require.Equal(t, nonce, p[:8])
	// The aborted request sends no response; the next one runs once the old handler has returned.
	fh.cbor = nil
	h.send(cid, ctaphid.CmdCBOR, []byte{4})
	require.Equal(t, []byte{0, 4}, h.expect(cid, ctaphid.CmdCBOR))
	require.False(t, fh.overlap.Load(), "handler calls overlapped")
}

func TestPortCloseCancelsRequest(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	done := make(chan []byte, 1)
	fh := &fakeHandler{cbor: func(ctx context.Context, req []byte, s func(byte)) []byte {
		r := waitCancel(started)(ctx, req, s)
		done <- r
		return r
	}}
	d := ctaphid.NewDevice(fh, testInfo)
	h := newHost(t, d)
	cid := h.init()
	h.send(cid, ctaphid.CmdCBOR, []byte{2})
	<-started
	require.NoError(t, h.conn.Close())
	select {
	case r := <-done:
		require.Equal(t, []byte{0x2D}, r)
	case <-time.After(time.Second):
		t.Fatal("closing the port did not cancel the request")
	}
	// Another port finds the device idle.
	h2 := newHost(t, d)
	c2 := h2.init()
	h2.send(c2, ctaphid.CmdPing, []byte{1})
	h2.expect(c2, ctaphid.CmdPing)
}

func TestBadReportSizesAreDropped(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	h := newHost(t, d)
	cid := h.init()
	out := make(chan []byte, 4)
	p := d.Open(func(r []byte) { out <- bytes.Clone(r) })
	defer p.Close()
	p.Input(append([]byte{0}, rawReport(cid, ctaphid.CmdPing)...)) // 65 bytes, report ID included
	p.Input(rawReport(cid, ctaphid.CmdPing)[:40])
	p.Input(nil)
	p.Input(rawReport(cid, ctaphid.CmdPing, 0, 1, 7))
	require.Equal(t, rawReport(cid, ctaphid.CmdPing, 0, 1, 7), <-out, "the first answer is the valid PING's")
}

func TestUnpluggedDeviceIgnoresInput(t *testing.T) {
	d := ctaphid.NewDevice(&fakeHandler{}, ctaphid.DeviceInfo{Capabilities: ctaphid.CapCBOR})
	h := newHost(t, d)
	cid := h.init()
	d.SetPowered(false)
	require.False(t, d.Powered())
	h.send(cid, ctaphid.CmdPing, []byte("hello")) // ignored: the next message is the error below
	d.SetPowered(true)
	require.True(t, d.Powered())
	h.send(cid, ctaphid.CmdPing, []byte("hello"))
	h.expectError(cid, ctaphid.ErrInvalidChannel) // channels did not survive the unplug
	cid = h.init()
	h.send(cid, ctaphid.CmdPing, []byte("hello"))
	require.Equal(t, []byte("hello"), h.expect(cid, ctaphid.CmdPing))
}

// TestFlushAfterEachMessage: a port's flush comes after the last report of a message, so a
// transport can write the message in one go.
func TestFlushAfterEachMessage(t *testing.T) {
	t.Parallel()
	for _, direct := range []bool{false, true} {
		var mu sync.Mutex
		var reports [][]byte
		var flushedAt []int
		flushed := make(chan struct{}, 8)
		opts := []ctaphid.PortOption{ctaphid.WithFlush(func() {
			mu.Lock()
			flushedAt = append(flushedAt, len(reports))
			mu.Unlock()
			flushed <- struct{}{}
		})}
		if direct {
			opts = append(opts, ctaphid.Direct())
		}
		d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
		p := d.Open(func(r []byte) {
			mu.Lock()
			reports = append(reports, bytes.Clone(r))
			mu.Unlock()
		}, opts...)
		init, _ := ctaphid.Fragment(ctaphid.BroadcastCID, ctaphid.CmdInit, make([]byte, 8))
		p.Input(init[0][:])
		<-flushed
		mu.Lock()
		cid := binary.BigEndian.Uint32(reports[0][15:])
		mu.Unlock()
		ping, _ := ctaphid.Fragment(cid, ctaphid.CmdPing, make([]byte, 200))
		for _, r := range ping {
			p.Input(r[:])
		}
		<-flushed
		mu.Lock()
		require.Equal(t, []int{1, 1 + len(ping)}, flushedAt, "direct=%v", direct)
		mu.Unlock()
		p.Close()
	}
}
