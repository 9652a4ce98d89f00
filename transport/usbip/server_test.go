package usbip_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbip"
	"github.com/fidolab/fidolab/transport/usbip/usbiptest"
	"github.com/stretchr/testify/require"
)

type rig struct {
	key  *emulator.Key
	addr string
	logs *syncbuf.Buffer
}

// serve exports a fresh in-memory key on a loopback port chosen by the system.
func serve(t *testing.T, busid string) *rig {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logs := &syncbuf.Buffer{}
	srv, err := usbip.NewServer(usbip.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k, BusID: busid,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return &rig{key: k, addr: l.Addr().String(), logs: logs}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestListImportAndTalk(t *testing.T) {
	t.Parallel()
	r := serve(t, "3-2")
	devs, err := usbiptest.List(ctx(t), "tcp", r.addr)
	require.NoError(t, err)
	require.Len(t, devs, 1)
	d := devs[0]
	require.Equal(t, "3-2", d.BusID)
	require.Equal(t, uint32(3), d.BusNum)
	require.Equal(t, uint32(2), d.Speed, "full speed in Linux's numbering")
	require.Equal(t, uint16(0x1209), d.VendorID)
	require.Equal(t, uint16(0xf1d0), d.ProductID)
	require.Equal(t, []usbip.Interface{{Class: 3}}, d.Interfaces)

	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, "3-2")
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, uint32(3<<16|2), c.Device.DevID())

	st, desc, err := c.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0100, Length: 8}, nil)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, st)
	require.Equal(t, []byte{18, 1, 0, 2, 0, 0, 0, 64}, desc, "the first 8 bytes, as asked")
	st, _, err = c.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0600, Length: 10}, nil)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusStall, st, "device_qualifier: -EPIPE")

	hid := ctaphid.NewClient(c)
	_, err = hid.Init(ctx(t))
	require.NoError(t, err)
	big := bytes.Repeat([]byte{0x5a}, 1500)
	echo, err := hid.Ping(ctx(t), big)
	require.NoError(t, err)
	require.Equal(t, big, echo)
	resp, err := hid.CBOR(ctx(t), []byte{0x04})
	require.NoError(t, err)
	require.Equal(t, byte(0), resp[0])
}

func TestImportRefusals(t *testing.T) {
	t.Parallel()
	r := serve(t, "")
	conn, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	_, err = usbiptest.Import(conn, "9-9")
	var ie *usbiptest.ImportError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, uint32(usbip.StNoDev), ie.Status)
	conn.Close()

	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err)
	defer c.Close()
	conn, err = net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = usbiptest.Import(conn, usbip.DefaultBusID)
	require.ErrorAs(t, err, &ie)
	require.Equal(t, uint32(usbip.StDevBusy), ie.Status, "one importer at a time")
	require.Contains(t, r.logs.String(), "imported by another client")
}

func TestUnlink(t *testing.T) {
	t.Parallel()
	r := serve(t, "")
	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID) // one IN URB pending now
	require.NoError(t, err)
	defer c.Close()
	seq, err := c.SubmitIn() // and a second one
	require.NoError(t, err)
	st, err := c.Unlink(ctx(t), seq)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusUnlinked, st, "a pending URB is unlinked: -ECONNRESET")
	st, err = c.Unlink(ctx(t), 999999)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, st, "an unknown or completed URB: 0")
	// The remaining URB still carries the answer.
	_, err = ctaphid.NewClient(c).Init(ctx(t))
	require.NoError(t, err)
}

func TestHaltStallsInterruptTransfers(t *testing.T) {
	t.Parallel()
	r := serve(t, "")
	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err)
	defer c.Close()
	st, _, err := c.Control(ctx(t), usbdev.Setup{RequestType: 0x02, Request: usbdev.ReqSetFeature, Index: 0x01}, nil)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, st)
	ret, err := c.Submit(ctx(t), usbip.Submit{Direction: usbip.DirOut, EP: 1, Length: 64, Data: make([]byte, 64)})
	require.NoError(t, err)
	require.Equal(t, usbip.StatusStall, ret.Status)
	st, _, err = c.Control(ctx(t), usbdev.Setup{RequestType: 0x02, Request: usbdev.ReqClearFeature, Index: 0x01}, nil)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, st)
	ret, err = c.Submit(ctx(t), usbip.Submit{Direction: usbip.DirOut, EP: 1, Length: 64, Data: make([]byte, 64)})
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, ret.Status)
	require.Equal(t, uint32(64), ret.ActualLength)

	// Port reset (the hub request the Linux stub turns into a device reset): unconfigured again.
	st, _, err = c.Control(ctx(t), usbdev.Setup{RequestType: 0x23, Request: usbdev.ReqSetFeature, Value: 4}, nil)
	require.NoError(t, err)
	require.Equal(t, usbip.StatusOK, st)
	_, cfg, err := c.Control(ctx(t), usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetConfiguration, Length: 1}, nil)
	require.NoError(t, err)
	require.Equal(t, []byte{0}, cfg)
}

func TestUnplugClosesTheImportAndHidesTheDevice(t *testing.T) {
	t.Parallel()
	r := serve(t, "")
	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, r.key.SetPlugged(false))
	select {
	case <-c.Done():
	case <-ctx(t).Done():
		t.Fatal("the imported connection stayed open after the unplug")
	}
	devs, err := usbiptest.List(ctx(t), "tcp", r.addr)
	require.NoError(t, err)
	require.Empty(t, devs, "an unplugged key is not listed")
	conn, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	_, err = usbiptest.Import(conn, usbip.DefaultBusID)
	var ie *usbiptest.ImportError
	require.ErrorAs(t, err, &ie)
	require.Equal(t, uint32(usbip.StNoDev), ie.Status)
	conn.Close()

	require.NoError(t, r.key.SetPlugged(true))
	c2, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err, "replugged: importable again")
	defer c2.Close()
	_, err = ctaphid.NewClient(c2).Init(ctx(t))
	require.NoError(t, err)
}

func TestProtocolErrorsEndOnlyThatConnection(t *testing.T) {
	t.Parallel()
	r := serve(t, "")
	// A client of another protocol version is turned away without an answer.
	conn, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	_, err = conn.Write(usbip.OpHeader{Version: 0x0106, Code: usbip.OpReqDevlist}.Encode())
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := conn.Read(make([]byte, 16))
	require.Zero(t, n)
	require.Error(t, err)
	conn.Close()

	// An imported client submitting to an endpoint the key lacks is disconnected.
	c, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err)
	_, err = c.Submit(ctx(t), usbip.Submit{Direction: usbip.DirIn, EP: 2, Length: 64})
	require.Error(t, err)
	require.False(t, errors.Is(err, context.DeadlineExceeded))
	c.Close()
	require.Eventually(t, func() bool {
		l := r.logs.String()
		return bytes.Contains([]byte(l), []byte("version 0x0106")) && bytes.Contains([]byte(l), []byte("endpoint 2, which the key does not have"))
	}, 5*time.Second, 10*time.Millisecond)

	// The key is still exported.
	c2, err := usbiptest.Dial(ctx(t), "tcp", r.addr, usbip.DefaultBusID)
	require.NoError(t, err)
	defer c2.Close()
	_, err = ctaphid.NewClient(c2).Init(ctx(t))
	require.NoError(t, err)
}

func TestBadBusID(t *testing.T) {
	t.Parallel()
	for _, b := range []string{"x", "0-1", "1-", "a-b", "1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1-1"} {
		_, err := usbip.NewServer(usbip.Config{BusID: b})
		require.Error(t, err, b)
	}
	s, err := usbip.NewServer(usbip.Config{BusID: "2-1.4"})
	require.NoError(t, err)
	require.Equal(t, "2-1.4", s.BusID())
}
