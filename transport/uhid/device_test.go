package uhid

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// fakeKernel stands in for /dev/uhid in unit tests: the test plays the kernel's side.
type fakeKernel struct {
	toDev   chan []byte // events the kernel sends to the device (its Reads)
	fromDev chan []byte // events the device writes
	closed  chan struct{}
	once    sync.Once
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{toDev: make(chan []byte, 16), fromDev: make(chan []byte, 64), closed: make(chan struct{})}
}

func (k *fakeKernel) Read(b []byte) (int, error) {
	select {
	case ev := <-k.toDev:
		return copy(b, ev), nil
	case <-k.closed:
		return 0, os.ErrClosed
	}
}

func (k *fakeKernel) Write(b []byte) (int, error) {
	select {
	case <-k.closed:
		return 0, os.ErrClosed
	default:
	}
	select {
	case k.fromDev <- bytes.Clone(b):
		return len(b), nil
	case <-k.closed:
		return 0, os.ErrClosed
	}
}

func (k *fakeKernel) Close() error {
	k.once.Do(func() { close(k.closed) })
	return nil
}

// next returns the next event the device wrote, failing the test if none comes.
func (k *fakeKernel) next(t *testing.T) []byte {
	t.Helper()
	select {
	case ev := <-k.fromDev:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("the device wrote no event")
		return nil
	}
}

func (k *fakeKernel) expect(t *testing.T, typ EventType) []byte {
	t.Helper()
	ev := k.next(t)
	require.Equal(t, typ, EventType(binary.LittleEndian.Uint32(ev)), "event type")
	return ev
}

// output is an OUTPUT event as hidraw makes it from a 65-byte write.
func output(report []byte, rtype ReportType) []byte {
	return event(EventOutput, func(b []byte) {
		copy(b[5:], report)
		binary.LittleEndian.PutUint16(b[4+DataMax:], uint16(1+len(report)))
		b[4+DataMax+2] = byte(rtype)
	})
}

// conn is a ctaphid.ReportConn on the kernel's side of the fake, like a process on hidraw.
type conn struct {
	t *testing.T
	k *fakeKernel
}

func (c conn) WriteReport(_ context.Context, r []byte) error {
	c.k.toDev <- output(r, OutputReport)
	return nil
}

func (c conn) ReadReport(ctx context.Context) ([]byte, error) {
	for {
		select {
		case ev := <-c.k.fromDev:
			if EventType(binary.LittleEndian.Uint32(ev)) != EventInput2 {
				return nil, errors.New("unexpected event " + EventType(binary.LittleEndian.Uint32(ev)).String())
			}
			n := binary.LittleEndian.Uint16(ev[4:])
			return ev[6 : 6+n], nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c conn) Close() error { return nil }

type testDevice struct {
	u    *Device
	k    *fakeKernel
	key  *emulator.Key
	sys  string
	dev  string
	done chan error
	stop context.CancelFunc
}

func startFake(t *testing.T) *testDevice {
	t.Helper()
	key, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { key.Close() })
	root := t.TempDir()
	td := &testDevice{k: newFakeKernel(), key: key, sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev"),
		done: make(chan error, 1)}
	td.u = New(key.Device, Config{Identity: usbdev.FromPersona(key.Persona.HID), SysfsRoot: td.sys, DevRoot: td.dev})
	td.u.open = func(path string) (eventFile, error) {
		require.Equal(t, DefaultPath, path)
		return td.k, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	td.stop = cancel
	go func() { td.done <- td.u.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-td.done
	})
	return td
}

// bind makes the fake sysfs and /dev show a hidraw node for the HID device with this phys.
func (td *testDevice) bind(t *testing.T, phys, node string) {
	t.Helper()
	hid := filepath.Join(td.sys, "bus/hid/devices/0003:1209:F1D0."+node)
	require.NoError(t, os.MkdirAll(filepath.Join(hid, "hidraw", node), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(hid, "uevent"),
		[]byte("DRIVER=hid-generic\nHID_ID=0003:00001209:0000F1D0\nHID_NAME=x\nHID_PHYS="+phys+"\nHID_UNIQ=0001\n"), 0o644))
	require.NoError(t, os.MkdirAll(td.dev, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(td.dev, node), nil, 0o600))
}

func parseCreate2(t *testing.T, ev []byte) Create2 {
	t.Helper()
	require.Len(t, ev, EventSize)
	str := func(b []byte) string { return string(b[:bytes.IndexByte(b, 0)]) }
	le := binary.LittleEndian
	n := int(le.Uint16(ev[260:]))
	return Create2{Name: str(ev[4:132]), Phys: str(ev[132:196]), Uniq: str(ev[196:260]), Bus: le.Uint16(ev[262:]),
		Vendor: le.Uint32(ev[264:]), Product: le.Uint32(ev[268:]), Version: le.Uint32(ev[272:]),
		Country: le.Uint32(ev[276:]), Descriptor: ev[280 : 280+n]}
}

func TestDeviceServesTheKey(t *testing.T) {
	t.Parallel()
	td := startFake(t)
	c := parseCreate2(t, td.k.expect(t, EventCreate2))
	require.Equal(t, "fidolab fidolab default key", c.Name)
	require.Equal(t, "0001", c.Uniq)
	require.Equal(t, uint16(BusUSB), c.Bus)
	require.Equal(t, uint32(0x1209), c.Vendor)
	require.Equal(t, uint32(0xf1d0), c.Product)
	require.Equal(t, uint32(0x0100), c.Version, "bcdDevice 1.00 from deviceMajor.deviceMinor")
	require.Equal(t, usbdev.ReportDescriptor, c.Descriptor)
	require.True(t, strings.HasPrefix(c.Phys, "fidolab/uhid-"), c.Phys)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td.bind(t, c.Phys, "hidraw7")
	node, err := td.u.Ready(ctx)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(td.dev, "hidraw7"), node)

	td.k.toDev <- event(EventStart, nil)
	td.k.toDev <- event(EventOpen, nil)
	hid := ctaphid.NewClient(conn{t, td.k})
	info, err := hid.Init(ctx)
	require.NoError(t, err)
	require.Equal(t, byte(2), info.ProtocolVersion)
	long := bytes.Repeat([]byte("fidolab"), 150) // several continuation packets each way
	got, err := hid.Ping(ctx, long)
	require.NoError(t, err)
	require.Equal(t, long, got)

	// Feature reports do not exist on a FIDO key: both directions fail with EIO.
	td.k.toDev <- event(EventGetReport, func(b []byte) { binary.LittleEndian.PutUint32(b[4:], 41) })
	require.Equal(t, [2]uint32{41, errnoEIO}, reply(td.k.expect(t, EventGetReportReply)))
	td.k.toDev <- event(EventSetReport, func(b []byte) {
		binary.LittleEndian.PutUint32(b[4:], 42)
		b[9] = byte(FeatureReport)
		binary.LittleEndian.PutUint16(b[10:], 2)
	})
	require.Equal(t, [2]uint32{42, errnoEIO}, reply(td.k.expect(t, EventSetReportReply)))

	// Malformed and foreign events change nothing: the next ping still gets exactly its answer.
	td.k.toDev <- []byte{6, 0}
	td.k.toDev <- output(make([]byte, 10), OutputReport) // not a 64-byte report
	td.k.toDev <- output(make([]byte, 64), FeatureReport)
	td.k.toDev <- event(99, nil)
	got, err = hid.Ping(ctx, []byte("after junk"))
	require.NoError(t, err)
	require.Equal(t, []byte("after junk"), got)

	// An output report can also come as SET_REPORT(Output) (HIDIOCSOUTPUT): it is a report.
	ping := make([]byte, 64)
	binary.BigEndian.PutUint32(ping, hid.CID())
	ping[4], ping[6], ping[7] = 0x81, 1, 'z'
	td.k.toDev <- event(EventSetReport, func(b []byte) {
		binary.LittleEndian.PutUint32(b[4:], 43)
		b[9] = byte(OutputReport)
		binary.LittleEndian.PutUint16(b[10:], 65)
		copy(b[13:], ping)
	})
	var sawReply, sawPong bool
	for !sawReply || !sawPong {
		ev := td.k.next(t)
		switch EventType(binary.LittleEndian.Uint32(ev)) {
		case EventSetReportReply:
			require.Equal(t, [2]uint32{43, errnoOK}, reply(ev))
			sawReply = true
		case EventInput2:
			require.Equal(t, ping[:8], ev[6:14], "the ping comes back")
			sawPong = true
		default:
			t.Fatalf("unexpected event %x", ev[:4])
		}
	}
}

// reply decodes a GET_REPORT_REPLY or SET_REPORT_REPLY into its id and errno.
func reply(b []byte) [2]uint32 {
	return [2]uint32{binary.LittleEndian.Uint32(b[4:]), uint32(binary.LittleEndian.Uint16(b[8:]))}
}

func TestDeviceUnplugAndReplug(t *testing.T) {
	t.Parallel()
	td := startFake(t)
	first := parseCreate2(t, td.k.expect(t, EventCreate2))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	td.bind(t, first.Phys, "hidraw1")
	_, err := td.u.Ready(ctx)
	require.NoError(t, err)

	// Through the key, as the control API does it: the transport follows WatchPlug.
	stop := td.key.WatchPlug(func(on bool) { require.NoError(t, td.u.SetPlugged(on)) })
	defer stop()
	require.NoError(t, td.key.SetPlugged(false))
	td.k.expect(t, EventDestroy)
	require.Empty(t, td.u.Hidraw())
	require.NoError(t, td.u.SetPlugged(false), "unplugging twice is nothing")

	require.NoError(t, td.key.SetPlugged(true))
	second := parseCreate2(t, td.k.expect(t, EventCreate2))
	require.NotEqual(t, first.Phys, second.Phys, "a replugged device is a new device")
	td.bind(t, second.Phys, "hidraw2")
	node, err := td.u.Ready(ctx)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(td.dev, "hidraw2"), node)

	hid := ctaphid.NewClient(conn{t, td.k})
	_, err = hid.Init(ctx)
	require.NoError(t, err, "the replugged device answers")

	td.stop()
	td.k.expect(t, EventDestroy)
	require.NoError(t, <-td.done)
	td.done <- nil // for the cleanup
}

func TestDeviceStartsUnplugged(t *testing.T) {
	t.Parallel()
	key, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer key.Close()
	k := newFakeKernel()
	u := New(key.Device, Config{Identity: usbdev.FromPersona(key.Persona.HID)})
	u.open = func(string) (eventFile, error) { return k, nil }
	require.NoError(t, u.SetPlugged(false))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	require.NoError(t, u.SetPlugged(true))
	k.expect(t, EventCreate2)
	cancel()
	require.NoError(t, <-done)
	select {
	case ev := <-k.fromDev:
		require.Equal(t, EventDestroy, EventType(binary.LittleEndian.Uint32(ev)))
	default:
		t.Fatal("no DESTROY at the end of Run")
	}
}

func TestRunWithoutUHID(t *testing.T) {
	t.Parallel()
	key, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer key.Close()
	u := New(key.Device, Config{Path: filepath.Join(t.TempDir(), "no-uhid")})
	err = u.Run(context.Background())
	require.ErrorContains(t, err, "modprobe uhid")
}

// Each device of a process gets its own HID_PHYS: the hidraw node is found by it.
func TestTwoDevicesDistinctPhys(t *testing.T) {
	t.Parallel()
	a, b := startFake(t), startFake(t)
	pa := parseCreate2(t, a.k.expect(t, EventCreate2)).Phys
	pb := parseCreate2(t, b.k.expect(t, EventCreate2)).Phys
	require.NotEqual(t, pa, pb)
}
