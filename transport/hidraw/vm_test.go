package hidraw

import (
	"context"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/vm"
	"github.com/stretchr/testify/require"
)

// TestVMHidrawKernel runs this package's …Kernel… tests in a QEMU guest against a fidolab key made
// a real HID device of the guest kernel by `fidolab serve --transport uhid`, and lists it with
// `fidolab devices`.
func TestVMHidrawKernel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	vm.Require(t)
	tests, err := vm.TestBinary(ctx, "github.com/fidolab/fidolab/transport/hidraw")
	require.NoError(t, err)
	fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab")
	require.NoError(t, err)
	script := `
modprobe_all uhid hid-generic
fidolab serve --transport uhid --control 127.0.0.1:0 2>/tmp/serve.log &
dev=$(wait_hidraw 1209 f1d0 10) || { cat /tmp/serve.log; die "no hidraw node"; }
for i in $(seq 100); do
	ctl=$(sed -n 's|.*control API on http://\([^/]*\)/.*|\1|p' /tmp/serve.log); [ -n "$ctl" ] && break; sleep 0.1
done
[ -n "$ctl" ] || die "no control API address"
fidolab devices || die "fidolab devices"
fidolab devices --json | grep -q '"key": "hidraw:'$dev'"' || die "fidolab devices --json does not list $dev"
FIDOLAB_GUEST_HIDRAW=$dev FIDOLAB_GUEST_CONTROL=$ctl hidraw.test -test.run 'Kernel' -test.v || die "in-guest tests"
echo "hidraw guest ok"
`
	res := vm.RunT(t, ctx, vm.Config{Script: script, Files: []vm.File{tests, fidolab}, Timeout: 3 * time.Minute})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "hidraw guest ok")
	require.Regexp(t, `hidraw:/dev/hidraw\d+\s+1209:f1d0\s+usb\s+fidolab`, res.Log, "fidolab devices shows the key with vid:pid and product")
	for _, name := range []string{"TestKernelEnumerate", "TestKernelOpenAndTalk", "TestKernelRefusesNonFIDO", "TestKernelUnplug"} {
		require.Contains(t, res.Log, "--- PASS: "+name)
	}
}
