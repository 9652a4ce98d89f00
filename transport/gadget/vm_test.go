package gadget

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/harness/vm"
)

// TestVMGadgetLibfido2 serves the key as a USB gadget in a QEMU guest whose own host side
// (dummy_hcd) enumerates it through usbcore, usbhid and hidraw: the USB descriptors are checked in
// sysfs, libfido2's tools list it and do a PIN-protected credential and assertion round trip, the
// control API unplugs and replugs it, and stopping fidolab removes the gadget tree.
func TestVMGadgetLibfido2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	script := `
modprobe_all configfs libcomposite usb_f_hid dummy_hcd usbhid hid-generic
mount -t configfs none /sys/kernel/config || die "mount configfs"
fidolab serve --transport gadget --control 127.0.0.1:0 2>/tmp/serve.log & pid=$!
dev=$(wait_hidraw 1209 f1d0 20) || { cat /tmp/serve.log; die "no hidraw node"; }
cat /tmp/serve.log
usb=$(grep -l 1209 /sys/bus/usb/devices/*/idVendor | head -1); usb=${usb%/idVendor}
echo "usb device $usb: $(cat $usb/idVendor):$(cat $usb/idProduct) bcdDevice $(cat $usb/bcdDevice) '$(cat $usb/manufacturer)' '$(cat $usb/product)' serial '$(cat $usb/serial)'"
[ "$(cat $usb/idProduct)" = f1d0 ] && [ "$(cat $usb/bcdDevice)" = 0100 ] || die "device descriptor"
[ "$(cat $usb/product)" = "fidolab default key" ] && [ "$(cat $usb/serial)" = 0001 ] || die "strings"
[ "$(cat $usb/*:1.0/bInterfaceClass)" = 03 ] && [ "$(cat $usb/*:1.0/bNumEndpoints)" = 02 ] || die "interface"
fido2-token -L | tee /tmp/list
grep -q "^$dev: vendor=0x1209, product=0xf1d0 (fidolab fidolab default key)" /tmp/list || die "fido2-token -L"
fido2_roundtrip $dev 1234 || { cat /tmp/serve.log; die "libfido2 round trip"; }
ctl=$(sed -n 's|.*control API on \(http://[^/]*\)/.*|\1|p' /tmp/serve.log)
wget -q -O- $ctl/usb1/power/off || die "control API power off"
wait_gone $dev 10 || die "hidraw node still there after unplug"
[ -z "$(cat /sys/kernel/config/usb_gadget/fidolab/UDC)" ] || die "still bound after unplug"
echo "unplugged: $dev gone"
wget -q -O- $ctl/usb1/power/on || die "control API power on"
dev2=$(wait_hidraw 1209 f1d0 20) || die "no hidraw node after replug"
fido2-token -I $dev2 | grep -q 'options:.* clientPin' || die "the replugged key has lost its PIN"
echo "replugged: $dev2"
kill $pid; wait $pid
[ -e /sys/kernel/config/usb_gadget/fidolab ] && die "gadget tree left behind"
wait_gone $dev2 10 || die "hidraw node left behind"
echo "stopped: gadget removed"
cat /tmp/serve.log
`
	res := vm.RunT(t, ctx, vm.Config{Script: script, Files: []vm.File{fidolab}, Timeout: 3 * time.Minute})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "fido2: assertion with user verification verified")
	require.Contains(t, res.Log, "stopped: gadget removed")
	if m := regexp.MustCompile(`gadget: bound, key speaks on \S+ \([^)]*\)`).FindString(res.Log); m != "" {
		t.Log("guest:", m)
	}
}
