package runner

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/hidraw"
	"github.com/stretchr/testify/require"
)

var fidoRDesc, _ = hex.DecodeString("06d0f10901a1010920150026ff007508954081020921150026ff00750895409102c0")

// fakeHidraw is a sysfs tree whose hidraw nodes a test plugs and unplugs.
type fakeHidraw struct {
	t        *testing.T
	sys, dev string
	seq      int
}

func newFakeHidraw(t *testing.T) *fakeHidraw {
	root := t.TempDir()
	f := &fakeHidraw{t: t, sys: filepath.Join(root, "sys"), dev: filepath.Join(root, "dev")}
	require.NoError(t, os.MkdirAll(filepath.Join(f.sys, "class", "hidraw"), 0o755))
	require.NoError(t, os.MkdirAll(f.dev, 0o755))
	return f
}

// plug adds node NAME for a key; every plug is a new HID device directory, as the kernel names each.
func (f *fakeHidraw) plug(name, pid, serial, phys string) {
	f.seq++
	hid := filepath.Join(f.sys, "devices", fmt.Sprintf("0003:1209:%s.%04d", pid, f.seq))
	node := filepath.Join(hid, "hidraw", name)
	require.NoError(f.t, os.MkdirAll(node, 0o755))
	require.NoError(f.t, os.Symlink("../../../"+filepath.Base(hid), filepath.Join(node, "device")))
	ue := fmt.Sprintf("HID_ID=0003:00001209:0000%s\nHID_NAME=key\nHID_UNIQ=%s\nHID_PHYS=%s\n", pid, serial, phys)
	require.NoError(f.t, os.WriteFile(filepath.Join(hid, "uevent"), []byte(ue), 0o644))
	require.NoError(f.t, os.WriteFile(filepath.Join(hid, "report_descriptor"), fidoRDesc, 0o644))
	require.NoError(f.t, os.Symlink(node, filepath.Join(f.sys, "class", "hidraw", name)))
	require.NoError(f.t, os.WriteFile(filepath.Join(f.dev, name), nil, 0o600))
}

func (f *fakeHidraw) unplug(name string) {
	require.NoError(f.t, os.Remove(filepath.Join(f.sys, "class", "hidraw", name)))
	require.NoError(f.t, os.Remove(filepath.Join(f.dev, name)))
}

func (f *fakeHidraw) device(path string) *hidrawDevice {
	return &hidrawDevice{path: path, enum: hidraw.Enumerator{Sys: f.sys, Dev: f.dev}, clock: clock.Real{}}
}

func TestHidrawKeyFoundAgainAfterReplug(t *testing.T) {
	t.Parallel()
	f := newFakeHidraw(t)
	f.plug("hidraw3", "F1D0", "A1", "usb-1/input0")
	f.plug("hidraw4", "F1D0", "B2", "usb-2/input0") // another key of the same model
	d := f.device(filepath.Join(f.dev, "hidraw3"))
	got, err := d.locate()
	require.NoError(t, err)
	require.Equal(t, "A1", got.Serial)

	// Replugged into the same port, it comes back as hidraw5.
	f.unplug("hidraw3")
	_, err = d.locate()
	require.ErrorIs(t, err, errNotPresent, "B2 is not this key")
	f.plug("hidraw5", "F1D0", "A1", "usb-1/input0")
	got, err = d.locate()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(f.dev, "hidraw5"), got.Path)

	// A UHID key names each creation's phys anew: the only key of its model is it.
	f.unplug("hidraw5")
	f.plug("hidraw6", "F1D0", "A1", "fidolab/uhid-9")
	got, err = d.locate()
	require.NoError(t, err)
	require.Equal(t, filepath.Join(f.dev, "hidraw6"), got.Path)
}

func TestHidrawFirstKey(t *testing.T) {
	t.Parallel()
	f := newFakeHidraw(t)
	_, err := f.device("").locate()
	require.ErrorContains(t, err, "no FIDO key on hidraw")
	f.plug("hidraw0", "F1D0", "A1", "p1")
	got, err := f.device("").locate()
	require.NoError(t, err, "hidraw: alone is the only key plugged in")
	require.Equal(t, "A1", got.Serial)
	f.plug("hidraw1", "F1D1", "B1", "p2")
	_, err = f.device("").locate()
	require.ErrorContains(t, err, "2 FIDO keys are plugged in; name one")
	_, err = f.device(filepath.Join(f.dev, "hidraw7")).locate()
	require.ErrorContains(t, err, "no hidraw7 in sysfs")
}

func TestHidrawWaitReplug(t *testing.T) {
	t.Parallel()
	f := newFakeHidraw(t)
	f.plug("hidraw0", "F1D0", "A1", "p1")
	d := f.device(filepath.Join(f.dev, "hidraw0"))
	_, err := d.locate()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.waitReplug(ctx) }()
	time.Sleep(3 * replugPoll)
	select {
	case err := <-done:
		t.Fatalf("returned before any replug: %v", err)
	default:
	}
	// Faster than one poll: gone and back between two looks; the new HID device gives it away.
	f.unplug("hidraw0")
	f.plug("hidraw0", "F1D0", "A1", "p1")
	require.NoError(t, <-done)

	short, cancel2 := context.WithTimeout(context.Background(), 3*replugPoll)
	defer cancel2()
	require.ErrorIs(t, d.waitReplug(short), context.DeadlineExceeded, "nobody replugs it")
}

// absentDevice is a key that never answers.
type absentDevice struct{ dials int }

func (d *absentDevice) dial(context.Context) (ctaphid.ReportConn, error) {
	d.dials++
	return nil, errNotPresent
}
func (d *absentDevice) waitReplug(context.Context) error { return errNotPresent }
func (d *absentDevice) describe() string                 { return "absent" }

// TestDialWaitsOnTheInjectedClock: the runner waits up to 10 s for a key to come back after a
// power-up, retrying every 50 ms, on its clock: a virtual one makes the wait cost no wall time.
func TestDialWaitsOnTheInjectedClock(t *testing.T) {
	t.Parallel()
	vc := clock.NewVirtual(time.Unix(1_000_000, 0))
	dev := &absentDevice{}
	f := &realFactory{spec: "hidraw:/dev/test", dev: dev, clock: vc}
	start := time.Now()
	_, err := f.dial(context.Background())
	require.ErrorIs(t, err, errNotPresent)
	require.Less(t, time.Since(start), 5*time.Second, "no wall-clock wait")
	require.GreaterOrEqual(t, vc.Now().Sub(time.Unix(1_000_000, 0)), 10*time.Second)
	require.InDelta(t, 200, dev.dials, 2, "one try every 50 ms for 10 s")
}
