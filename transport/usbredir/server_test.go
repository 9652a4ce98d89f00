package usbredir_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbredir"
	"github.com/fidolab/fidolab/transport/usbredir/usbredirtest"
	"github.com/stretchr/testify/require"
)

type rig struct {
	key  *emulator.Key
	addr string
	logs *syncbuf.Buffer
}

// serve runs a usbredir server for a fresh in-memory key on a Unix socket in t's temp dir.
func serve(t *testing.T) *rig {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	addr := filepath.Join(t.TempDir(), "redir.sock")
	l, err := net.Listen("unix", addr)
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	srv := usbredir.NewServer(usbredir.Config{
		Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return &rig{key: k, addr: addr, logs: logs}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestGuestEnumeratesAndTalksCTAPHID(t *testing.T) {
	t.Parallel()
	r := serve(t)
	g, err := usbredirtest.Dial(ctx(t), "unix", r.addr)
	require.NoError(t, err)
	defer g.Close()

	ep, ifs := g.Info()
	require.Equal(t, byte(usbredir.EPTypeInterrupt), ep.Type[usbredir.EPIndex(0x81)])
	require.Equal(t, byte(usbredir.EPTypeInterrupt), ep.Type[usbredir.EPIndex(0x01)])
	require.Equal(t, byte(usbredir.EPTypeControl), ep.Type[0])
	require.Equal(t, byte(usbredir.EPTypeInvalid), ep.Type[usbredir.EPIndex(0x82)])
	require.Equal(t, uint16(64), ep.MaxPacketSize[usbredir.EPIndex(0x81)])
	require.Equal(t, byte(usbdev.DefaultInterval), ep.Interval[usbredir.EPIndex(0x81)])
	require.Equal(t, uint32(1), ifs.Count)
	require.Equal(t, byte(3), ifs.Class[0])

	st, desc, err := g.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0302, Index: 0x409, Length: 255}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusSuccess, st)
	require.Equal(t, "fidolab default key", utf16le(desc[2:]))
	st, _, err = g.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0600, Length: 10}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusStall, st, "device_qualifier stalls: full speed only")

	c := ctaphid.NewClient(g)
	info, err := c.Init(ctx(t))
	require.NoError(t, err)
	require.NotZero(t, info.CID)
	big := bytes.Repeat([]byte{0xa5}, 1000) // 17 reports each way
	echo, err := c.Ping(ctx(t), big)
	require.NoError(t, err)
	require.Equal(t, big, echo)
	resp, err := c.CBOR(ctx(t), []byte{0x04}) // authenticatorGetInfo
	require.NoError(t, err)
	require.Equal(t, byte(0), resp[0])
}

func utf16le(b []byte) string {
	r := make([]rune, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		r = append(r, rune(b[i])|rune(b[i+1])<<8)
	}
	return string(r)
}

func TestUnplugAndReplugThroughTheKey(t *testing.T) {
	t.Parallel()
	r := serve(t)
	g, err := usbredirtest.Dial(ctx(t), "unix", r.addr)
	require.NoError(t, err)
	defer g.Close()
	e := <-g.Events()
	require.True(t, e.Connected, "the first connect")

	require.NoError(t, r.key.SetPlugged(false))
	e = <-g.Events()
	require.False(t, e.Connected, "unplug is a device_disconnect")
	require.ErrorIs(t, g.WriteReport(ctx(t), make([]byte, 64)), usbredirtest.ErrDisconnected)

	require.NoError(t, r.key.SetPlugged(true))
	e = <-g.Events()
	require.True(t, e.Connected, "replug is a device_connect (after the guest's disconnect ack)")
	require.Equal(t, uint16(0xf1d0), e.Device.ProductID)
	require.Equal(t, uint16(0x0100), e.Device.BCDDevice)
	require.NoError(t, g.Enumerate(ctx(t)), "a new device: enumerated afresh")
	c := ctaphid.NewClient(g)
	_, err = c.Init(ctx(t))
	require.NoError(t, err)
	_, err = c.Ping(ctx(t), []byte("after replug"))
	require.NoError(t, err)
	require.Contains(t, r.logs.String(), "device unplugged")
}

func TestUnpluggedAtConnectWaitsForReplug(t *testing.T) {
	t.Parallel()
	r := serve(t)
	require.NoError(t, r.key.SetPlugged(false))
	conn, err := net.Dial("unix", r.addr)
	require.NoError(t, err)
	g, err := usbredirtest.New(conn, usbredirtest.Options{})
	require.NoError(t, err)
	defer g.Close()
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = g.WaitConnected(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "no device while unplugged")
	// A control request for the absent device fails instead of hanging.
	st, _, err := g.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0100, Length: 18}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusIOError, st)
	require.NoError(t, r.key.SetPlugged(true))
	_, err = g.WaitConnected(ctx(t))
	require.NoError(t, err)
}

func TestInputWaitsForPollingAndHalt(t *testing.T) {
	t.Parallel()
	r := serve(t)
	conn, err := net.Dial("unix", r.addr)
	require.NoError(t, err)
	g, err := usbredirtest.New(conn, usbredirtest.Options{})
	require.NoError(t, err)
	defer g.Close()
	_, err = g.WaitConnected(ctx(t))
	require.NoError(t, err)
	// Configure, but do not poll the IN endpoint yet.
	p, err := g.Request(ctx(t), usbredir.Packet{Type: usbredir.TypeSetConfiguration, Header: []byte{1}})
	require.NoError(t, err)
	require.Equal(t, []byte{0, 1}, p.Header)
	init := make([]byte, 64)
	copy(init, []byte{0xff, 0xff, 0xff, 0xff, 0x86, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8})
	require.NoError(t, g.WriteReport(ctx(t), init))
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = g.ReadReport(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "nothing is sent before start_interrupt_receiving")

	// Halt the IN endpoint, start polling: still held.
	st, _, err := g.Control(ctx(t), usbdev.Setup{RequestType: 0x02, Request: usbdev.ReqSetFeature, Index: 0x81}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusSuccess, st)
	require.NoError(t, g.StartReceiving(ctx(t)))
	short2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	_, err = g.ReadReport(short2)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a halted endpoint sends nothing")

	st, _, err = g.Control(ctx(t), usbdev.Setup{RequestType: 0x02, Request: usbdev.ReqClearFeature, Index: 0x81}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusSuccess, st)
	rep, err := g.ReadReport(ctx(t))
	require.NoError(t, err)
	require.Equal(t, init[:6], rep[:6], "the held INIT response arrives once the halt is cleared")
	require.Equal(t, init[7:15], rep[7:15], "with the nonce")

	// A halted OUT endpoint stalls the transfer.
	_, _, err = g.Control(ctx(t), usbdev.Setup{RequestType: 0x02, Request: usbdev.ReqSetFeature, Index: 0x01}, nil)
	require.NoError(t, err)
	reply, err := g.Request(ctx(t), usbredir.Packet{Type: usbredir.TypeInterruptPacket,
		Header: usbredir.InterruptHeader{Endpoint: 0x01, Length: 64}.Encode(), Data: init})
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusStall, usbredir.DecodeInterruptHeader(reply.Header).Status)
}

func TestUnsupportedRequestsGetStatuses(t *testing.T) {
	t.Parallel()
	r := serve(t)
	g, err := usbredirtest.Dial(ctx(t), "unix", r.addr)
	require.NoError(t, err)
	defer g.Close()
	n := g.Negotiated()
	cases := []struct {
		req      usbredir.Packet
		wantType usbredir.Type
		want     []byte
	}{
		{usbredir.Packet{Type: usbredir.TypeGetConfiguration}, usbredir.TypeConfigurationStatus, []byte{0, 1}},
		{usbredir.Packet{Type: usbredir.TypeSetConfiguration, Header: []byte{7}}, usbredir.TypeConfigurationStatus, []byte{4, 1}},
		{usbredir.Packet{Type: usbredir.TypeGetAltSetting, Header: []byte{0}}, usbredir.TypeAltSettingStatus, []byte{0, 0, 0}},
		{usbredir.Packet{Type: usbredir.TypeSetAltSetting, Header: []byte{0, 1}}, usbredir.TypeAltSettingStatus, []byte{4, 0, 0xff}},
		{usbredir.Packet{Type: usbredir.TypeStartInterruptReceiving, Header: []byte{0x82}}, usbredir.TypeInterruptReceivingStatus, []byte{2, 0x82}},
		{usbredir.Packet{Type: usbredir.TypeStartIsoStream, Header: []byte{0x83, 8, 4}}, usbredir.TypeIsoStreamStatus, []byte{2, 0x83}},
		{usbredir.Packet{Type: usbredir.TypeAllocBulkStreams, Header: []byte{4, 0, 0, 0, 8, 0, 0, 0}}, usbredir.TypeBulkStreamsStatus, []byte{4, 0, 0, 0, 0, 0, 0, 0, 2}},
		{usbredir.Packet{Type: usbredir.TypeStopBulkReceiving, Header: []byte{1, 0, 0, 0, 0x82}}, usbredir.TypeBulkReceivingStatus, []byte{1, 0, 0, 0, 0x82, 2}},
		{usbredir.Packet{Type: usbredir.TypeBulkPacket, Header: usbredir.BulkHeader{Endpoint: 0x82, Length: 512}.Encode(n)}, usbredir.TypeBulkPacket,
			usbredir.BulkHeader{Endpoint: 0x82, Status: usbredir.StatusInval}.Encode(n)},
		{usbredir.Packet{Type: usbredir.TypeInterruptPacket, Header: usbredir.InterruptHeader{Endpoint: 0x81, Length: 64}.Encode()}, usbredir.TypeInterruptPacket,
			usbredir.InterruptHeader{Endpoint: 0x81, Status: usbredir.StatusInval}.Encode()},
	}
	for _, c := range cases {
		p, err := g.Request(ctx(t), c.req)
		require.NoError(t, err, c.req.Type)
		require.Equal(t, c.wantType, p.Type, c.req.Type)
		require.Equal(t, c.want, p.Header, c.req.Type)
	}
	// Unknown types and cancels of answered packets are skipped; the connection goes on.
	require.NoError(t, g.Send(usbredir.Packet{Type: 999, Data: []byte("x")}))
	require.NoError(t, g.Send(usbredir.Packet{Type: usbredir.TypeCancelDataPacket, ID: 1}))
	_, err = ctaphid.NewClient(g).Init(ctx(t))
	require.NoError(t, err)
	require.Contains(t, r.logs.String(), "unknown type")
}

func TestMalformedPacketEndsOnlyThatConnection(t *testing.T) {
	t.Parallel()
	r := serve(t)
	conn, err := net.Dial("unix", r.addr)
	require.NoError(t, err)
	g, err := usbredirtest.New(conn, usbredirtest.Options{})
	require.NoError(t, err)
	_, err = g.WaitConnected(ctx(t))
	require.NoError(t, err)
	// set_configuration must be 1 byte long.
	require.NoError(t, g.Send(usbredir.Packet{Type: usbredir.TypeSetConfiguration, ID: 9, Header: []byte{1, 2, 3}}))
	_, err = g.ReadReport(ctx(t))
	require.Error(t, err, "the server hung up")
	g.Close()
	require.Eventually(t, func() bool {
		return bytes.Contains([]byte(r.logs.String()), []byte("set_configuration with length 3, want 1"))
	},
		5*time.Second, 10*time.Millisecond)

	// The key is still served, and the next guest gets it.
	g2, err := usbredirtest.Dial(ctx(t), "unix", r.addr)
	require.NoError(t, err)
	defer g2.Close()
	_, err = ctaphid.NewClient(g2).Init(ctx(t))
	require.NoError(t, err)
}

func TestSecondGuestIsRefused(t *testing.T) {
	t.Parallel()
	r := serve(t)
	g, err := usbredirtest.Dial(ctx(t), "unix", r.addr)
	require.NoError(t, err)
	defer g.Close()
	conn, err := net.Dial("unix", r.addr)
	require.NoError(t, err)
	_, err = usbredirtest.New(conn, usbredirtest.Options{})
	require.Error(t, err, "no hello for a second guest")
	require.Eventually(t, func() bool { return bytes.Contains([]byte(r.logs.String()), []byte("refusing a second guest")) },
		5*time.Second, 10*time.Millisecond)
}

func TestFilterThatRefusesTheKeyIsReported(t *testing.T) {
	t.Parallel()
	r := serve(t)
	conn, err := net.Dial("unix", r.addr)
	require.NoError(t, err)
	g, err := usbredirtest.New(conn, usbredirtest.Options{Filter: "0x08,-1,-1,-1,1|-1,-1,-1,-1,0"})
	require.NoError(t, err)
	defer g.Close()
	_, err = g.WaitConnected(ctx(t))
	require.NoError(t, err)
	require.NoError(t, g.Send(usbredir.Packet{Type: usbredir.TypeFilterReject}))
	require.Eventually(t, func() bool {
		l := r.logs.String()
		return bytes.Contains([]byte(l), []byte("filter refuses this key")) && bytes.Contains([]byte(l), []byte("rejected the key"))
	}, 5*time.Second, 10*time.Millisecond)
	// After the reject the device is gone for this guest until replugged.
	st, _, err := g.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0100, Length: 18}, nil)
	require.NoError(t, err)
	require.Equal(t, usbredir.StatusIOError, st)
	for len(g.Events()) > 0 {
		<-g.Events()
	}
	require.NoError(t, r.key.SetPlugged(false))
	require.NoError(t, r.key.SetPlugged(true))
	select {
	case e := <-g.Events():
		require.True(t, e.Connected, "a replug offers the key again")
	case <-ctx(t).Done():
		t.Fatal("no device_connect after the replug")
	}
}

// A replug waits for the guest's device_disconnect_ack when both sides have the capability, so
// the guest never takes packets of the old device for the new one; without it, it does not wait.
func TestReplugWaitsForDisconnectAck(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		caps usbredir.Caps
		wait bool
	}{
		{"with the ack capability", usbredirtest.Caps, true},
		{"without it", usbredirtest.Caps &^ (1 << usbredir.CapDeviceDisconnectAck), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := serve(t)
			conn, err := net.Dial("unix", r.addr)
			require.NoError(t, err)
			g, err := usbredirtest.New(conn, usbredirtest.Options{Caps: c.caps, NoDisconnectAck: true})
			require.NoError(t, err)
			defer g.Close()
			require.True(t, (<-g.Events()).Connected)
			require.NoError(t, r.key.SetPlugged(false))
			require.False(t, (<-g.Events()).Connected)
			require.NoError(t, r.key.SetPlugged(true))
			if c.wait {
				select {
				case e := <-g.Events():
					t.Fatalf("device_connect (%v) before the guest acknowledged the disconnect", e)
				case <-time.After(100 * time.Millisecond):
				}
				require.NoError(t, g.Send(usbredir.Packet{Type: usbredir.TypeDeviceDisconnectAck}))
			}
			select {
			case e := <-g.Events():
				require.True(t, e.Connected)
			case <-ctx(t).Done():
				t.Fatal("no device_connect after the replug")
			}
		})
	}
}
