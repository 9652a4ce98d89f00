package usbredir_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/harness/vm"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// hostServe runs `fidolab serve ARGS` on the host and returns its stderr once it serves.
func hostServe(t *testing.T, bin string, args ...string) *syncbuf.Buffer {
	t.Helper()
	out := &syncbuf.Buffer{}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	cmd.Stderr = out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("fidolab serve:\n%s", out.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(out.String(), "fidolab: serving") }, 20*time.Second, 20*time.Millisecond)
	return out
}

// TestVMUSBRedir serves the key with `fidolab serve --transport usbredir` on the host and attaches
// it to a QEMU guest through `-device usb-redir` on an XHCI controller. The guest's own USB stack
// (xhci_hcd, usbcore, usbhid, hid-generic, hidraw) enumerates a full-speed HID device whose sysfs
// attributes and report descriptor are the persona's; libfido2's tools list it, set a PIN, make a
// credential and get a verified assertion; an unplug through the control API (asked for by the
// guest with host_call) removes the hidraw node, and the replug brings back a device that still
// has its PIN.
func TestVMUSBRedir(t *testing.T) {
	t.Parallel()
	vm.Require(t)
	ctx := context.Background()
	bin, err := vm.GoBinary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	sock := filepath.Join(t.TempDir(), "redir.sock")
	out := hostServe(t, bin, "--transport", "usbredir", "--listen", "unix:"+sock, "--control", "127.0.0.1:0")
	ctl := regexp.MustCompile(`control API on (http://[0-9.:]+)/`).FindStringSubmatch(out.String())
	require.NotNil(t, ctl, out.String())
	power := func(onoff string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ctl[1]+"/power/"+onoff, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			t.Logf("host: control API power/%s: %s", onoff, resp.Status)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("power/%s: %s", onoff, resp.Status)
			}
			return nil
		}
	}
	script := `
modprobe_all xhci-pci usbhid hid-generic
dev=$(wait_hidraw 1209 f1d0 60) || { dmesg | tail -30; die "no hidraw node for the usb-redir key"; }
usb=""
for d in /sys/bus/usb/devices/*; do [ "$(cat $d/idProduct 2>/dev/null)" = f1d0 ] && usb=$d; done
[ -n "$usb" ] || die "no USB device 1209:f1d0 in sysfs"
echo "sysfs: $(cat $usb/idVendor):$(cat $usb/idProduct) speed=$(cat $usb/speed) bcdDevice=$(cat $usb/bcdDevice) bMaxPacketSize0=$(cat $usb/bMaxPacketSize0)"
echo "sysfs: manufacturer='$(cat $usb/manufacturer)' product='$(cat $usb/product)' serial='$(cat $usb/serial)'"
[ "$(cat $usb/speed)" = 12 ] || die "not full speed"
[ "$(cat $usb/bcdDevice)" = 0100 ] || die "bcdDevice"
[ "$(cat $usb/product)" = "fidolab default key" ] || die "product string"
[ "$(cat $usb/manufacturer)" = fidolab ] || die "manufacturer string"
[ "$(cat $usb/serial)" = 0001 ] || die "serial string"
intf=$usb/$(basename $usb):1.0
echo "sysfs: interface class=$(cat $intf/bInterfaceClass) subclass=$(cat $intf/bInterfaceSubClass) protocol=$(cat $intf/bInterfaceProtocol) endpoints=$(cat $intf/bNumEndpoints)"
[ "$(cat $intf/bInterfaceClass)" = 03 ] || die "bInterfaceClass is not 03 (HID)"
[ "$(cat $intf/bNumEndpoints)" = 02 ] || die "bNumEndpoints"
echo "sysfs: ep_81 $(cat $intf/ep_81/type) $(cat $intf/ep_81/wMaxPacketSize) $(cat $intf/ep_81/interval); ep_01 $(cat $intf/ep_01/type) $(cat $intf/ep_01/wMaxPacketSize)"
[ "$(cat $intf/ep_81/type)" = Interrupt ] || die "ep 0x81 type"
[ "$(cat $intf/ep_01/wMaxPacketSize)" = 0040 ] || die "ep 0x01 wMaxPacketSize"
rd=$(od -An -v -tx1 /sys/class/hidraw/${dev#/dev/}/device/report_descriptor | tr -d ' \n')
echo "sysfs: report_descriptor $rd"
[ "$rd" = "$WANT_RD" ] || die "report descriptor differs"
fido2-token -L | tee /tmp/list
grep -q "^$dev: vendor=0x1209, product=0xf1d0 (fidolab fidolab default key)" /tmp/list || die "fido2-token -L does not list the key"
fido2_roundtrip $dev 1234 || die "libfido2 round trip"
host_call unplug || die "the host could not unplug the key"
wait_gone $dev 60 || die "hidraw node still there after the unplug"
wait_gone "$usb" 20 || die "USB device still there after the unplug"
echo "unplugged: $dev and $usb gone"
host_call replug || die "the host could not replug the key"
dev2=$(wait_hidraw 1209 f1d0 60) || die "no hidraw node after the replug"
fido2-token -I $dev2 | grep -q 'options:.* clientPin' || die "the replugged key has lost its PIN"
echo "replugged: $dev2"
`
	res := vm.RunT(t, ctx, vm.Config{
		Script:    script,
		Env:       map[string]string{"WANT_RD": hex.EncodeToString(usbdev.ReportDescriptor)},
		QEMUArgs:  []string{"-device", "qemu-xhci,id=xhci", "-chardev", "socket,id=ur0,path=" + sock, "-device", "usb-redir,chardev=ur0,id=redir0,bus=xhci.0"},
		HostCalls: map[string]func(context.Context) error{"unplug": power("off"), "replug": power("on")},
		Timeout:   4 * time.Minute,
	})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "fido2: assertion with user verification verified")
	require.Contains(t, res.Log, "replugged: /dev/hidraw")
	require.Contains(t, out.String(), "usbredir: device unplugged")
	for _, l := range regexp.MustCompile(`(?m)^sysfs: .*$`).FindAllString(res.Log, -1) {
		t.Log("guest:", l)
	}
}
