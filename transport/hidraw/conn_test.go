//go:build linux

package hidraw

import (
	"context"
	"errors"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/transport/hiddesc"
	"github.com/stretchr/testify/require"
)

// TestPollerInterruptsCharDeviceRead checks the mechanism Conn relies on: os.OpenFile registers a
// character device with the runtime poller, so a context's deadline or cancellation ends a read the
// device never answers. A pseudo-terminal master stands in for the hidraw node (this machine has
// none; the guest test repeats this on a real one).
func TestPollerInterruptsCharDeviceRead(t *testing.T) {
	t.Parallel()
	f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no /dev/ptmx to stand in for a character device: %v", err)
	}
	c := newConn(f, "/dev/ptmx", Info{}, false)
	t.Cleanup(func() { _ = c.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.ReadReport(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 2*time.Second)

	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel2() }()
	_, err = c.ReadReport(ctx2)
	require.ErrorIs(t, err, context.Canceled)

	// The deadline of the cancelled read does not leak into the next one.
	ctx3, cancel3 := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel3()
	start = time.Now()
	_, err = c.ReadReport(ctx3)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)

	require.NoError(t, c.Close())
	_, err = c.ReadReport(context.Background())
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, c.Close(), "closing twice is harmless")
}

// fakeNodePair returns a Conn and the other end of a SOCK_SEQPACKET socket pair: like a hidraw node,
// each read returns one whole report and each write is one report.
func fakeNodePair(t *testing.T, id uint8, ids bool) (*Conn, *os.File) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC|syscall.SOCK_NONBLOCK, 0)
	require.NoError(t, err)
	host := os.NewFile(uintptr(fds[0]), "host")
	dev := os.NewFile(uintptr(fds[1]), "device")
	c := newConn(host, "fake", Info{Report: hiddescReport(id)}, ids)
	t.Cleanup(func() { _ = c.Close(); _ = dev.Close() })
	return c, dev
}

// serveFake runs an emulated key behind the device end: output reports arrive with their report
// ID byte first (as hidraw writes them), input reports go out with the ID when the descriptor has
// IDs. noise, when set, is a report of another ID sent before every real one.
func serveFake(t *testing.T, dev *os.File, id uint8, ids bool, noise bool) {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	var wmu sync.Mutex
	port := k.Device.Open(func(r []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		if noise {
			_, _ = dev.Write(append([]byte{id + 1}, make([]byte, 64)...))
		}
		if ids {
			r = append([]byte{id}, r...)
		}
		_, _ = dev.Write(r)
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 128)
		for {
			n, err := dev.Read(buf)
			if err != nil {
				return
			}
			if n != 65 || buf[0] != id {
				t.Errorf("output report of %d bytes with report ID %d, want 65 bytes with ID %d", n, buf[0], id)
				return
			}
			port.Input(buf[1:n])
		}
	}()
	t.Cleanup(func() { _ = dev.Close(); <-done; port.Close(); _ = k.Close() })
}

func TestConnCarriesCTAPHID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		id    uint8
		ids   bool
		noise bool
	}{
		{name: "no report IDs", id: 0},
		{name: "report ID 2 among others", id: 2, ids: true, noise: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, dev := fakeNodePair(t, tt.id, tt.ids)
			serveFake(t, dev, tt.id, tt.ids, tt.noise)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			hid := ctaphid.NewClient(c)
			_, err := hid.Init(ctx)
			require.NoError(t, err)
			cl := client.New(hid)
			info, err := cl.GetInfo(ctx)
			require.NoError(t, err)
			require.Contains(t, info.Versions, "FIDO_2_1")
			echo := make([]byte, 300) // several continuation packets each way
			for i := range echo {
				echo[i] = byte(i)
			}
			_, err = hid.Ping(ctx, echo)
			require.NoError(t, err)
		})
	}
}

func TestConnRejectsWrongSizesAndReportsGone(t *testing.T) {
	t.Parallel()
	c, dev := fakeNodePair(t, 0, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.ErrorIs(t, c.WriteReport(ctx, make([]byte, 63)), ctaphid.ErrReportSize)

	_, err := dev.Write(make([]byte, 32))
	require.NoError(t, err)
	_, err = c.ReadReport(ctx)
	require.ErrorContains(t, err, "report of 32 bytes")

	require.NoError(t, dev.Close()) // the key goes away
	_, err = c.ReadReport(ctx)
	require.True(t, errors.Is(err, ErrGone), "%v", err)
}

func TestLayoutRefusesOtherDevices(t *testing.T) {
	t.Parallel()
	_, _, err := layout(keyboardDescriptor)
	require.ErrorContains(t, err, "not a FIDO device")
	info, ids, err := layout(fidoDescriptor)
	require.NoError(t, err)
	require.False(t, ids)
	require.Equal(t, 64, info.Report.InputSize)
	small := append([]byte(nil), fidoDescriptor...)
	small[17] = 0x20 // Report Count 32 for the input report
	_, _, err = layout(small)
	require.ErrorContains(t, err, "reports of 32/64 bytes")
}

func TestOpenRefusesWhatIsNotAHidrawNode(t *testing.T) {
	t.Parallel()
	p := t.TempDir() + "/file"
	require.NoError(t, os.WriteFile(p, nil, 0o600))
	_, err := Open(p)
	require.ErrorContains(t, err, "not a character device")
	_, err = Open("/dev/null")
	require.ErrorContains(t, err, "reading the report descriptor")
	_, err = Open(t.TempDir() + "/missing")
	require.ErrorIs(t, err, os.ErrNotExist)
}

func hiddescReport(id uint8) hiddesc.FIDOReport {
	return hiddesc.FIDOReport{ID: id, InputSize: 64, OutputSize: 64}
}
