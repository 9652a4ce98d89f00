//go:build gousb

package usb

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/vm"
	"github.com/stretchr/testify/require"
)

// guestKeyEnv names the key TestInGuestKey opens; only the guest test sets it.
const guestKeyEnv = "FIDOLAB_GUEST_USB_KEY"

// TestInGuestKey runs inside the QEMU guest of TestVMGousbAgainstGadget (this test binary is copied
// there with its libusb): it opens the gadget key through libusb and speaks CTAPHID to it. Outside
// that guest it skips.
func TestInGuestKey(t *testing.T) {
	spec := os.Getenv(guestKeyEnv)
	if spec == "" {
		t.Skip("runs inside the guest of TestVMGousbAgainstGadget")
	}
	s, err := ParseSpec(spec)
	require.NoError(t, err)
	devs, err := List()
	require.NoError(t, err)
	require.Len(t, devs, 1, "%+v", devs)
	require.Equal(t, s.Vendor, devs[0].VendorID)
	require.Equal(t, "gadget key", devs[0].Product)
	require.Equal(t, "fidolab", devs[0].Manufacturer)
	require.Equal(t, "FLGADGET1", devs[0].Serial)

	hidrawBefore, _ := filepath.Glob("/sys/class/hidraw/hidraw*")
	require.NotEmpty(t, hidrawBefore, "usbhid bound the gadget's HID interface")
	c, err := Open(s)
	require.NoError(t, err)
	hidrawOpen, _ := filepath.Glob("/sys/class/hidraw/hidraw*")
	require.Empty(t, hidrawOpen, "claiming the interface detached usbhid from it")
	require.Equal(t, "FLGADGET1", c.Device().Serial)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hid := ctaphid.NewClient(c)
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	info, err := client.New(hid).GetInfo(ctx)
	require.NoError(t, err)
	require.Contains(t, info.Versions, "FIDO_2_1")
	echo := []byte(strings.Repeat("fidolab over libusb ", 20)) // several packets each way
	_, err = hid.Ping(ctx, echo)
	require.NoError(t, err)

	// A read the key never answers ends with its context.
	rctx, rcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = c.ReadReport(rctx)
	rcancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	require.NoError(t, c.Close())
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, _ := filepath.Glob("/sys/class/hidraw/hidraw*")
		if len(after) > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "usbhid never came back to the interface after Close")
		time.Sleep(50 * time.Millisecond)
	}
	t.Log("guest: gousb opened the gadget key, CTAPHID ran, usbhid was given back")
}

// gadgetScript makes the guest its own USB host and device: dummy_hcd, a configfs HID gadget with
// the FIDO report descriptor, hidgkey serving an emulated key on /dev/hidg0, and usbhid on the host
// side. Then the gousb test binary runs against the device.
const gadgetScript = `
modprobe_all dummy_hcd libcomposite usb_f_hid usbhid hid-generic
mount -t configfs none /sys/kernel/config 2>/dev/null
g=/sys/kernel/config/usb_gadget/fl
mkdir $g || die "no usb_gadget in configfs"
echo 0x1209 > $g/idVendor; echo 0xf1d1 > $g/idProduct; echo 0x0200 > $g/bcdUSB
mkdir $g/strings/0x409
echo fidolab > $g/strings/0x409/manufacturer
echo "gadget key" > $g/strings/0x409/product
echo FLGADGET1 > $g/strings/0x409/serialnumber
mkdir $g/functions/hid.usb0
echo 0 > $g/functions/hid.usb0/protocol; echo 0 > $g/functions/hid.usb0/subclass
echo 64 > $g/functions/hid.usb0/report_length
printf '\006\320\361\011\001\241\001\011\040\025\000\046\377\000\165\010\225\100\201\002\011\041\025\000\046\377\000\165\010\225\100\221\002\300' > $g/functions/hid.usb0/report_desc
mkdir $g/configs/c.1
ln -s $g/functions/hid.usb0 $g/configs/c.1/
ls /sys/class/udc > $g/UDC || die "no UDC"
wait_for /dev/hidg0 || die "no /dev/hidg0"
hidgkey /dev/hidg0 &
wait_hidraw 1209 f1d1 || die "the host side never bound the gadget"
cat /sys/bus/usb/devices/*/product 2>/dev/null
FIDOLAB_GUEST_USB_KEY=1209:f1d1 /usr/bin/usb.test -test.run '^TestInGuestKey$' -test.v || die "gousb in the guest"
wait_hidraw 1209 f1d1 || die "usbhid did not come back"
fidolab devices --usb || die "fidolab devices --usb"
# The runner on the gadget key through libusb: no control API and no terminal, so one case, on the
# empty key, runs; the key needs no replug for it.
fidolab run --quiet --ascii --key usb:1209:f1d1:FLGADGET1 --filter 're:^sign-in-lock-screen$ windows:11-24H2' || die "fidolab run --key usb:"
echo "gousb guest ok"
`

// TestVMGousbAgainstGadget proves transport/usb against a real kernel USB stack: in a QEMU guest a
// fidolab key is a USB HID gadget on dummy_hcd, the guest's own host side enumerates it, and this
// package's test binary (cgo, linked to libusb, copied in with its libraries) opens it through
// libusb, detaching and giving back usbhid, and speaks CTAPHID to it.
func TestVMGousbAgainstGadget(t *testing.T) {
	t.Parallel()
	vm.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "usb.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", "gousb", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	files, err := vm.DynamicBinary(bin, "/usr/bin/usb.test")
	require.NoError(t, err)
	fidolab := filepath.Join(t.TempDir(), "fidolab")
	build = exec.CommandContext(ctx, "go", "build", "-tags", "gousb", "-o", fidolab, "../../cmd/fidolab")
	build.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err = build.CombinedOutput()
	require.NoError(t, err, "%s", out)
	cli, err := vm.DynamicBinary(fidolab, "/usr/bin/fidolab")
	require.NoError(t, err)
	key, err := vm.Binary(ctx, "github.com/fidolab/fidolab/transport/usb/testdata/hidgkey")
	require.NoError(t, err)
	files = append(append(files, cli...), key)
	res := vm.RunT(t, ctx, vm.Config{Script: gadgetScript, Files: files, Timeout: 3 * time.Minute})
	require.Equal(t, 0, res.ExitCode, res.Log)
	require.Contains(t, res.Log, "gousb guest ok")
	require.Contains(t, res.Log, "--- PASS: TestInGuestKey")
	require.Contains(t, res.Log, "usb:1209:f1d1:FLGADGET1", "fidolab devices --usb lists the key with its --key value")
	require.Contains(t, res.Log, "PASS  1 cases: 1 passed")
}
