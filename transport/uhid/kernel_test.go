package uhid

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// Tests named …Kernel… need a real /dev/uhid with hid-generic loaded. This machine has none, so
// TestVMUHIDKernel runs them in a QEMU guest; FIDOLAB_IN_GUEST=1 makes a missing /dev/uhid fail.
func requireUHID(tb testing.TB) {
	tb.Helper()
	f, err := os.OpenFile(DefaultPath, os.O_RDWR, 0)
	if err == nil {
		f.Close()
		return
	}
	if os.Getenv("FIDOLAB_IN_GUEST") == "1" {
		tb.Fatalf("in the guest, %s must work: %v", DefaultPath, err)
	}
	tb.Skipf("no usable %s here (%v): TestVMUHIDKernel runs this test in a QEMU guest", DefaultPath, err)
}

// hidrawConn is a process on the key's hidraw node: 65-byte writes (report number 0 first),
// 64-byte reads.
type hidrawConn struct{ f *os.File }

func openHidraw(tb testing.TB, node string) *hidrawConn {
	tb.Helper()
	f, err := os.OpenFile(node, os.O_RDWR, 0)
	require.NoError(tb, err)
	return &hidrawConn{f}
}

func (c *hidrawConn) WriteReport(_ context.Context, r []byte) error {
	_, err := c.f.Write(append([]byte{0}, r...))
	return err
}

func (c *hidrawConn) ReadReport(ctx context.Context) ([]byte, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = c.f.SetReadDeadline(d)
	}
	b := make([]byte, 64)
	n, err := c.f.Read(b)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

func (c *hidrawConn) Close() error { return c.f.Close() }

type kernelKey struct {
	key  *emulator.Key
	u    *Device
	done chan error
}

func startKernel(tb testing.TB, personaName string) *kernelKey {
	tb.Helper()
	requireUHID(tb)
	p, err := persona.Builtin(personaName)
	require.NoError(tb, err)
	key, err := emulator.Open(emulator.Options{Persona: p})
	require.NoError(tb, err)
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	kk := &kernelKey{key: key, done: make(chan error, 1)}
	kk.u = New(key.Device, Config{Identity: usbdev.FromPersona(key.Persona.HID), Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { kk.done <- kk.u.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		require.NoError(tb, <-kk.done)
		key.Close()
	})
	return kk
}

func waitGone(tb testing.TB, path string) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s still exists", path)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKernelUHID(t *testing.T) {
	kk := startKernel(t, "default")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := kk.u.Ready(ctx)
	require.NoError(t, err)
	t.Logf("hidraw node %s", node)

	// What the kernel made of CREATE2, as udev and libfido2 read it.
	sys := filepath.Join("/sys/class/hidraw", filepath.Base(node), "device")
	uevent, err := os.ReadFile(filepath.Join(sys, "uevent"))
	require.NoError(t, err)
	for _, want := range []string{"HID_ID=0003:00001209:0000F1D0", "HID_NAME=fidolab fidolab default key", "HID_UNIQ=0001", "DRIVER=hid-generic"} {
		require.Contains(t, string(uevent), want+"\n")
	}
	rd, err := os.ReadFile(filepath.Join(sys, "report_descriptor"))
	require.NoError(t, err)
	require.Equal(t, usbdev.ReportDescriptor, rd)

	c := openHidraw(t, node)
	hid := ctaphid.NewClient(c)
	info, err := hid.Init(ctx)
	require.NoError(t, err)
	require.Equal(t, byte(2), info.ProtocolVersion)
	long := bytes.Repeat([]byte{0xa5, 0x5a, 0x00}, 400)
	got, err := hid.Ping(ctx, long)
	require.NoError(t, err)
	require.Equal(t, long, got)
	resp, err := hid.CBOR(ctx, []byte{0x04}) // authenticatorGetInfo
	require.NoError(t, err)
	require.Equal(t, byte(0), resp[0], "getInfo status")

	// Unplug: the node goes away and the open file fails, as with a key pulled out.
	require.NoError(t, kk.u.SetPlugged(false))
	waitGone(t, node)
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.ReadReport(rctx)
	rcancel()
	require.Error(t, err)
	require.False(t, errors.Is(err, os.ErrDeadlineExceeded), "a read on an unplugged key's node fails at once: %v", err)
	c.Close()

	// Replug: a node comes back and the key answers on it.
	require.NoError(t, kk.u.SetPlugged(true))
	node2, err := kk.u.Ready(ctx)
	require.NoError(t, err)
	c2 := openHidraw(t, node2)
	defer c2.Close()
	_, err = ctaphid.NewClient(c2).Init(ctx)
	require.NoError(t, err)
}

// BenchmarkUHIDReady measures how long the key takes to be usable: from opening /dev/uhid (start)
// or from UHID_CREATE2 (replug) until its /dev/hidrawN exists.
func BenchmarkUHIDReady(b *testing.B) {
	requireUHID(b)
	key, err := emulator.Open(emulator.Options{})
	require.NoError(b, err)
	defer key.Close()
	id := usbdev.FromPersona(key.Persona.HID)
	b.Run("start", func(b *testing.B) {
		for b.Loop() {
			u := New(key.Device, Config{Identity: id})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- u.Run(ctx) }()
			if _, err := u.Ready(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("replug", func(b *testing.B) {
		u := New(key.Device, Config{Identity: id})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = u.Run(ctx) }()
		if _, err := u.Ready(ctx); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			b.StopTimer()
			if err := u.SetPlugged(false); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if err := u.SetPlugged(true); err != nil {
				b.Fatal(err)
			}
			if _, err := u.Ready(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Two keys at once, each with its persona's identity: nothing is hard-wired to the default key.
func TestKernelUHIDTwoPersonas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct{ persona, hidID, uniq string }{
		{"ctap20", "HID_ID=0003:00001209:0000F1D1", "HID_UNIQ=0020"},
		{"u2f", "HID_ID=0003:00001209:0000F1D2", "HID_UNIQ=0002"},
	} {
		kk := startKernel(t, tc.persona)
		node, err := kk.u.Ready(ctx)
		require.NoError(t, err)
		uevent, err := os.ReadFile(filepath.Join("/sys/class/hidraw", filepath.Base(node), "device/uevent"))
		require.NoError(t, err)
		require.Contains(t, string(uevent), tc.hidID+"\n", tc.persona)
		require.Contains(t, string(uevent), tc.uniq+"\n", tc.persona)
		c := openHidraw(t, node)
		_, err = ctaphid.NewClient(c).Init(ctx)
		require.NoError(t, err, tc.persona)
		c.Close()
	}
}
