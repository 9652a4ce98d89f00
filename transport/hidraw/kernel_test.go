//go:build linux

package hidraw

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

// Tests named …Kernel… run in the QEMU guest of TestVMHidrawKernel against a fidolab key that
// `fidolab serve --transport uhid` made a real HID device of the guest kernel: FIDOLAB_GUEST_HIDRAW
// names its node, FIDOLAB_GUEST_CONTROL its control API. Elsewhere they skip.
func guestKey(t *testing.T) (node, control string) {
	t.Helper()
	node, control = os.Getenv("FIDOLAB_GUEST_HIDRAW"), os.Getenv("FIDOLAB_GUEST_CONTROL")
	if node == "" || control == "" {
		t.Skip("runs in the guest of TestVMHidrawKernel (no FIDOLAB_GUEST_HIDRAW here)")
	}
	return node, control
}

func power(t *testing.T, control, state string) {
	t.Helper()
	resp, err := http.Post("http://"+control+"/power/"+state, "application/json", nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestKernelEnumerate(t *testing.T) {
	node, _ := guestKey(t)
	devs, err := List()
	require.NoError(t, err)
	require.Len(t, devs, 1, "%+v", devs)
	d := devs[0]
	require.Equal(t, node, d.Path)
	require.Equal(t, uint16(BusUSB), d.Bus, "fidolab's UHID key is on bus USB, as libfido2 needs")
	require.Equal(t, "1209:f1d0", d.ID())
	require.Contains(t, d.Product, "fidolab")
	require.NotEmpty(t, d.Serial)
	require.True(t, d.FIDO)
	require.True(t, d.Accessible)
	require.Empty(t, d.Problem)
	require.True(t, strings.HasPrefix(d.SysPath, "/sys/devices/"), d.SysPath)
	t.Logf("guest: %s %s %q serial %q phys %q", d.Path, d.ID(), d.Product, d.Serial, d.Phys)

	all, err := Enumerator{}.List(true)
	require.NoError(t, err)
	require.Len(t, all, 1, "no other HID device in the guest")
}

func TestKernelOpenAndTalk(t *testing.T) {
	node, _ := guestKey(t)
	c, err := Open(node)
	require.NoError(t, err)
	defer c.Close()
	info := c.Info()
	require.Equal(t, uint16(BusUSB), info.Bus, "HIDIOCGRAWINFO")
	require.Equal(t, uint16(0x1209), info.VendorID)
	require.Equal(t, uint16(0xf1d0), info.ProductID)
	require.Contains(t, info.Name, "fidolab", "HIDIOCGRAWNAME")
	require.Equal(t, 64, info.Report.InputSize, "HIDIOCGRDESC")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hid := ctaphid.NewClient(c)
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	gi, err := client.New(hid).GetInfo(ctx)
	require.NoError(t, err)
	require.Contains(t, gi.Versions, "FIDO_2_1")
	_, err = hid.Ping(ctx, []byte(strings.Repeat("hidraw ", 100)))
	require.NoError(t, err)

	// The runtime poller on a real hidraw node: a read the key never answers ends with its context.
	rctx, rcancel := context.WithTimeout(ctx, 150*time.Millisecond)
	start := time.Now()
	_, err = c.ReadReport(rctx)
	rcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	cctx, ccancel := context.WithCancel(ctx)
	time.AfterFunc(100*time.Millisecond, ccancel)
	_, err = c.ReadReport(cctx)
	require.ErrorIs(t, err, context.Canceled)
	_, err = hid.Ping(ctx, []byte("still fine"))
	require.NoError(t, err, "an interrupted read leaves the node usable")
}

func TestKernelRefusesNonFIDO(t *testing.T) {
	guestKey(t)
	_, err := Open("/dev/null")
	require.Error(t, err)
	_, err = Open("/dev/hidraw99")
	require.True(t, errors.Is(err, os.ErrNotExist), "%v", err)
}

// TestKernelUnplug: the control API unplugs the key (UHID_DESTROY): an open node fails with
// ErrGone, the node goes; the replugged key is found again by its identity.
func TestKernelUnplug(t *testing.T) {
	node, control := guestKey(t)
	before, err := Enumerator{}.Describe(node)
	require.NoError(t, err)
	c, err := Open(node)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	read := make(chan error, 1)
	go func() { _, err := c.ReadReport(ctx); read <- err }()
	time.Sleep(100 * time.Millisecond)
	power(t, control, "off")
	select {
	case err := <-read:
		require.ErrorIs(t, err, ErrGone)
	case <-time.After(10 * time.Second):
		t.Fatal("a read on an unplugged key did not end")
	}
	power(t, control, "on")
	var again Device
	require.Eventually(t, func() bool {
		devs, err := List()
		if err != nil || len(devs) != 1 {
			return false
		}
		again = devs[0]
		return true
	}, 10*time.Second, 50*time.Millisecond)
	require.True(t, before.SameModel(again), "before %+v, after %+v", before, again)
	require.NotEqual(t, before.SysPath, again.SysPath, "a new HID device: sysfs names each one anew")
}
