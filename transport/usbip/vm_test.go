package usbip_test

import (
	"context"
	"encoding/hex"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/harness/vm"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// TestVMUSBIP serves the key with `fidolab serve --transport usbip` inside a QEMU guest on
// loopback and imports it with Linux's own client: `usbip list -r` and `usbip attach -r 127.0.0.1
// -b 1-1` hand the connection to vhci-hcd, whose USB stack (usbcore, usbhid, hid-generic, hidraw)
// enumerates the key. libfido2's tools list it, set a PIN, make a credential and get a verified
// assertion. An unplug through the control API closes the imported connection: vhci-hcd detaches
// the device (the hidraw node goes) and `usbip list` no longer shows it; after the replug `usbip
// attach` imports it again, PIN kept.
func TestVMUSBIP(t *testing.T) {
	t.Parallel()
	vm.Require(t)
	ctx := context.Background()
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	script := `
modprobe_all vhci-hcd usbhid hid-generic
[ -e /var/run ] || { mkdir -p /var; ln -s /run /var/run; }   # usbip keeps its port records there
fidolab serve --transport usbip --control 127.0.0.1:0 2>/tmp/serve.log &
for i in $(seq 1 100); do grep -q "fidolab: serving" /tmp/serve.log && break; sleep 0.1; done
cat /tmp/serve.log
grep -q "USB/IP tcp:127.0.0.1:3240, bus ID 1-1" /tmp/serve.log || die "not serving USB/IP on 127.0.0.1:3240"
usbip list -r 127.0.0.1 | tee /tmp/rlist
grep -q "1-1: .*(1209:f1d0)" /tmp/rlist || die "usbip list does not show the key"
usbip attach -r 127.0.0.1 -b 1-1 || die "usbip attach"
dev=$(wait_hidraw 1209 f1d0 60) || { dmesg | tail -30; die "no hidraw node for the imported key"; }
usbip port | tee /tmp/port
grep -q "1209:f1d0" /tmp/port || die "usbip port does not show the key"
readlink -f /sys/class/hidraw/${dev#/dev/}/device | grep -q vhci_hcd || die "$dev is not under vhci_hcd"
usb=""
for d in /sys/bus/usb/devices/*; do [ "$(cat $d/idProduct 2>/dev/null)" = f1d0 ] && usb=$d; done
echo "sysfs: $(cat $usb/idVendor):$(cat $usb/idProduct) speed=$(cat $usb/speed) product='$(cat $usb/product)' class=$(cat $usb/$(basename $usb):1.0/bInterfaceClass)"
[ "$(cat $usb/speed)" = 12 ] || die "not full speed"
[ "$(cat $usb/$(basename $usb):1.0/bInterfaceClass)" = 03 ] || die "not HID"
rd=$(od -An -v -tx1 /sys/class/hidraw/${dev#/dev/}/device/report_descriptor | tr -d ' \n')
[ "$rd" = "$WANT_RD" ] || die "report descriptor differs: $rd"
fido2-token -L | tee /tmp/list
grep -q "^$dev: vendor=0x1209, product=0xf1d0 (fidolab fidolab default key)" /tmp/list || die "fido2-token -L does not list the key"
fido2_roundtrip $dev 1234 || die "libfido2 round trip"
ctl=$(sed -n 's|.*control API on \(http://[^/]*\)/.*|\1|p' /tmp/serve.log)
wget -q -O- $ctl/usb1/power/off || die "control API power off"
wait_gone $dev 60 || die "hidraw node still there after the unplug"
echo "unplugged: $dev gone"
usbip list -r 127.0.0.1 | grep -q "1-1:" && die "usbip list shows the unplugged key"
usbip attach -r 127.0.0.1 -b 1-1 2>/dev/null && die "an unplugged key was imported"
wget -q -O- $ctl/usb1/power/on || die "control API power on"
usbip attach -r 127.0.0.1 -b 1-1 || die "usbip attach after the replug"
dev2=$(wait_hidraw 1209 f1d0 60) || die "no hidraw node after the replug"
fido2-token -I $dev2 | grep -q 'options:.* clientPin' || die "the replugged key has lost its PIN"
echo "replugged: $dev2"
cat /tmp/serve.log
`
	res := vm.RunT(t, ctx, vm.Config{
		Script:  script,
		Files:   []vm.File{fidolab},
		Env:     map[string]string{"WANT_RD": hex.EncodeToString(usbdev.ReportDescriptor)},
		Timeout: 4 * time.Minute,
	})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "fido2: assertion with user verification verified")
	require.Contains(t, res.Log, "replugged: /dev/hidraw")
	for _, l := range regexp.MustCompile(`(?m)^sysfs: .*$`).FindAllString(res.Log, -1) {
		t.Log("guest:", l)
	}
}
