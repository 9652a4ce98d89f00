package ctaphid_test

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

const allCaps = ctaphid.CapWink | ctaphid.CapCBOR

var testInfo = ctaphid.DeviceInfo{Major: 5, Minor: 4, Build: 3, Capabilities: allCaps}

// epoch is where the tests' virtual clocks start.
var epoch = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// virtualDevice is a device on a virtual clock: its timers fire only when the test moves the clock.
func virtualDevice(h ctaphid.Handler, opts ...ctaphid.Option) (*ctaphid.Device, *clock.Virtual) {
	v := clock.NewVirtual(epoch)
	return ctaphid.NewDevice(h, testInfo, append([]ctaphid.Option{ctaphid.WithClock(v)}, opts...)...), v
}

// fakeHandler echoes requests; cbor, when set, replaces the CBOR behaviour.
type fakeHandler struct {
	cbor    func(ctx context.Context, req []byte, setStatus func(byte)) []byte
	msg     func(ctx context.Context, apdu []byte) []byte
	winks   atomic.Int32
	calls   atomic.Int32
	running atomic.Int32
	overlap atomic.Bool // set if two handler calls ever ran at once
}

func (h *fakeHandler) enter() func() {
	h.calls.Add(1)
	if h.running.Add(1) > 1 {
		h.overlap.Store(true)
	}
	return func() { h.running.Add(-1) }
}

func (h *fakeHandler) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	defer h.enter()()
	if h.cbor != nil {
		return h.cbor(ctx, req, setStatus)
	}
	return append([]byte{byte(ctap.StatusOK)}, req...)
}

func (h *fakeHandler) HandleMSG(ctx context.Context, apdu []byte) []byte {
	defer h.enter()()
	if h.msg != nil {
		return h.msg(ctx, apdu)
	}
	return append(append([]byte{}, apdu...), 0x90, 0x00)
}

func (h *fakeHandler) Wink() {
	defer h.enter()()
	h.winks.Add(1)
}

// waitCancel is a CBOR behaviour that blocks until cancelled, as a key waiting for a touch that
// never comes.
func waitCancel(started chan<- struct{}) func(context.Context, []byte, func(byte)) []byte {
	return func(ctx context.Context, _ []byte, setStatus func(byte)) []byte {
		setStatus(ctaphid.StatusUPNeeded)
		if started != nil {
			started <- struct{}{}
		}
		<-ctx.Done()
		return []byte{byte(ctap.ErrKeepaliveCancel)}
	}
}

// sleeping is a CBOR behaviour that works for d on the device's clock c, as a slow secure element.
func sleeping(c clock.Clock, d time.Duration) func(context.Context, []byte, func(byte)) []byte {
	return func(ctx context.Context, _ []byte, _ func(byte)) []byte {
		if c.Sleep(ctx, d) != nil {
			return []byte{byte(ctap.ErrKeepaliveCancel)}
		}
		return []byte{0}
	}
}

// host drives a device with raw reports.
type host struct {
	t    *testing.T
	conn *inproc.Conn
}

func newHost(t *testing.T, d *ctaphid.Device) *host {
	c := inproc.Connect(d)
	t.Cleanup(func() { c.Close() })
	return &host{t: t, conn: c}
}

func (h *host) write(r []byte) {
	h.t.Helper()
	require.NoError(h.t, h.conn.WriteReport(context.Background(), r))
}

func (h *host) send(cid uint32, cmd byte, payload []byte) {
	h.t.Helper()
	reports, err := ctaphid.Fragment(cid, cmd, payload)
	require.NoError(h.t, err)
	for _, r := range reports {
		h.write(r[:])
	}
}

// recv returns the next message the device sends to this host, whatever its channel.
func (h *host) recv(timeout time.Duration) (ctaphid.Message, bool) {
	h.t.Helper()
	ev, ok := h.recvAt(timeout)
	return ev.msg, ok
}

// recvAt is recv with the time, on the device's clock, at which the device sent the message.
func (h *host) recvAt(timeout time.Duration) (event, bool) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rx ctaphid.Reassembler
	for {
		r, at, err := h.conn.ReadReportAt(ctx)
		if err != nil {
			return event{}, false
		}
		msg, ok, err := rx.Add(r)
		require.NoError(h.t, err)
		if ok {
			return event{at: at, msg: msg}, true
		}
	}
}

// untilResponse returns every message on cid up to and including the first one that is not a
// KEEPALIVE, each with the time the device sent it.
func (h *host) untilResponse(cid uint32) []event {
	h.t.Helper()
	var evs []event
	for {
		ev, ok := h.recvAt(2 * time.Second)
		require.True(h.t, ok, "no response after %d messages", len(evs))
		require.Equal(h.t, cid, ev.msg.CID)
		evs = append(evs, ev)
		if ev.msg.Cmd != ctaphid.CmdKeepalive {
			return evs
		}
	}
}

// sync checks that the device sent nothing else to this host: its answer to a PING on cid (an
// echo, or CHANNEL_BUSY while a request runs) must be the next message. Output to a port is in
// order, so this proves silence without waiting for it.
func (h *host) sync(cid uint32) {
	h.t.Helper()
	h.send(cid, ctaphid.CmdPing, []byte("sync"))
	msg, ok := h.recv(2 * time.Second)
	require.True(h.t, ok, "no answer to the sync PING")
	require.Equal(h.t, cid, msg.CID, "unexpected message %+v", msg)
	if msg.Cmd == ctaphid.CmdError {
		require.Equal(h.t, []byte{byte(ctaphid.ErrChannelBusy)}, msg.Payload, "unexpected message %+v", msg)
		return
	}
	require.Equal(h.t, ctaphid.CmdPing, msg.Cmd, "unexpected message %+v", msg)
	require.Equal(h.t, []byte("sync"), msg.Payload)
}

func (h *host) expect(cid uint32, cmd byte) []byte {
	h.t.Helper()
	msg, ok := h.recv(2 * time.Second)
	require.True(h.t, ok, "no answer, want command %02x", cmd)
	require.Equal(h.t, cid, msg.CID)
	require.Equal(h.t, cmd, msg.Cmd, "payload %x", msg.Payload)
	return msg.Payload
}

func (h *host) expectError(cid uint32, code ctaphid.ErrorCode) {
	h.t.Helper()
	p := h.expect(cid, ctaphid.CmdError)
	require.Equal(h.t, []byte{byte(code)}, p, "want %s", code)
}

func (h *host) init() uint32 {
	h.t.Helper()
	nonce := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	h.send(ctaphid.BroadcastCID, ctaphid.CmdInit, nonce)
	p := h.expect(ctaphid.BroadcastCID, ctaphid.CmdInit)
	require.Len(h.t, p, 17)
	require.Equal(h.t, nonce, p[:8])
	return binary.BigEndian.Uint32(p[8:])
}

func rawReport(cid uint32, b4 byte, rest ...byte) []byte {
	r := make([]byte, ctaphid.ReportSize)
	binary.BigEndian.PutUint32(r, cid)
	r[4] = b4
	copy(r[5:], rest)
	return r
}

// event is a message and the time, on the device's clock, at which the device sent it.
type event struct {
	at  time.Time
	msg ctaphid.Message
}
