package uhid

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/harness/vm"
)

// TestVMUHIDKernel runs this package's kernel tests and the readiness benchmark in a QEMU guest,
// against the guest kernel's real /dev/uhid, HID core, hid-generic and hidraw.
func TestVMUHIDKernel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	bin, err := vm.TestBinary(ctx, "github.com/fidolab/fidolab/transport/uhid")
	require.NoError(t, err)
	res := vm.RunT(t, ctx, vm.Config{
		Script: `modprobe_all uhid hid-generic
uhid.test -test.run 'Kernel' -test.v -test.bench 'UHIDReady' -test.benchtime 20x`,
		Files: []vm.File{bin},
		Env:   map[string]string{"FIDOLAB_IN_GUEST": "1"},
	})
	require.Equal(t, 0, res.ExitCode, "in-guest tests failed")
	require.Contains(t, res.Log, "--- PASS: TestKernelUHID ")
	require.Contains(t, res.Log, "--- PASS: TestKernelUHIDTwoPersonas")
	for _, m := range regexp.MustCompile(`(?m)^BenchmarkUHIDReady/\S+\s+\d+\s+\d+ ns/op.*$`).FindAllString(res.Log, -1) {
		t.Log("guest:", m)
	}
}

// TestVMUHIDLibfido2 serves the key with `fidolab serve --transport uhid` in the guest and drives it
// with libfido2's tools: listed on bus USB with the persona's IDs, getInfo, a PIN set, a credential
// made and verified, an assertion with UV verified; then the control API unplugs the key (its
// hidraw node goes) and replugs it (a node comes back and answers).
func TestVMUHIDLibfido2(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	script := `
modprobe_all uhid hid-generic
fidolab serve --transport uhid --control 127.0.0.1:0 2>/tmp/serve.log &
dev=$(wait_hidraw 1209 f1d0 10) || { cat /tmp/serve.log; die "no hidraw node"; }
cat /tmp/serve.log
grep -q "HID_ID=0003:00001209:0000F1D0" /sys/class/hidraw/${dev#/dev/}/device/uevent || die "not on bus USB"
fido2-token -L | tee /tmp/list
grep -q "^$dev: vendor=0x1209, product=0xf1d0" /tmp/list || die "fido2-token -L does not list the key"
fido2_roundtrip $dev 1234 || die "libfido2 round trip"
ctl=$(sed -n 's|.*control API on \(http://[^/]*\)/.*|\1|p' /tmp/serve.log)
[ -n "$ctl" ] || die "no control API address"
wget -q -O- $ctl/usb1/power/off || die "control API power off"
wait_gone $dev 10 || die "hidraw node still there after unplug"
fido2-token -L | grep -q 0xf1d0 && die "the unplugged key is still listed"
echo "unplugged: $dev gone"
wget -q -O- $ctl/usb1/power/on || die "control API power on"
dev2=$(wait_hidraw 1209 f1d0 10) || die "no hidraw node after replug"
fido2-token -I $dev2 | grep -q 'options:.* clientPin' || die "the replugged key has lost its PIN"
echo "replugged: $dev2"
cat /tmp/serve.log
`
	res := vm.RunT(t, ctx, vm.Config{Script: script, Files: []vm.File{fidolab}, Timeout: 3 * time.Minute})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "fido2: assertion with user verification verified")
	require.Contains(t, res.Log, "replugged: /dev/hidraw")
	if m := regexp.MustCompile(`uhid: key is \S+ \(ready [^)]*\)`).FindString(res.Log); m != "" {
		t.Log("guest:", m)
	}
}
