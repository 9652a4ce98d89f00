package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Tests named TestVM… boot guests; `go tool task vmtest` runs them (and those of other packages).

func TestVMExitStatus(t *testing.T) {
	t.Parallel()
	// 200 does not fit isa-debug-exit's (status << 1) | 1 in a process exit code: the console line carries it.
	for _, code := range []int{0, 3, 200} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel() // several guests at once
			script := fmt.Sprintf("echo hello from the guest\necho 'fidolab-vm: exit 0000 9'\nexit %d\n", code)
			res := RunT(t, context.Background(), Config{Script: script, Timeout: 2 * time.Minute})
			require.Equal(t, code, res.ExitCode)
			require.Contains(t, res.Log, "hello from the guest")
			require.Positive(t, res.Boot)
			require.GreaterOrEqual(t, res.Total, res.Boot)
		})
	}
}

func TestVMFilesEnvAndHelpers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hello, err := Binary(ctx, "./testdata/hello")
	require.NoError(t, err)
	src := filepath.Join(t.TempDir(), "data.txt")
	require.NoError(t, os.WriteFile(src, []byte("from a host file\n"), 0o600))
	script := `
set -e
cat /etc/fidolab-test/inline.txt
cat /opt/data.txt
[ "$(stat -c %a /opt/data.txt)" = 644 ] || die "mode of data.txt: $(stat -c %a /opt/data.txt)"
[ "$(stat -c %a /usr/local/bin/tool)" = 750 ] || die "mode of tool"
/usr/local/bin/tool
hello a b
echo "QUOTED=[$QUOTED]"
grep -q '^root:x:0:0:replaced' /etc/passwd || die "the run's /etc/passwd did not replace the base one"
wait_for /tmp/never 1 && die "wait_for found a missing file"
touch /tmp/later; wait_for /tmp/later 1 || die "wait_for missed a file"
( sleep 0.3; rm /tmp/later ) & wait_gone /tmp/later 3 || die "wait_gone"
hidraw_of 1209 f1d0 && die "hidraw_of found a device in an empty guest"
echo helpers ok
`
	res := RunT(t, ctx, Config{
		Script: script,
		Files: []File{
			{Path: "/etc/fidolab-test/inline.txt", Data: []byte("inline data\n")},
			{Path: "/opt/data.txt", Source: src},
			{Path: "/usr/local/bin/tool", Mode: 0o750, Data: []byte("#!/bin/sh\necho tool ran\n")},
			{Path: "/etc/passwd", Data: []byte("root:x:0:0:replaced:/root:/bin/sh\n")},
			hello,
		},
		Env:     map[string]string{"QUOTED": `it's "quoted" $HOME`},
		Timeout: 2 * time.Minute,
	})
	require.Equal(t, 0, res.ExitCode)
	for _, want := range []string{"inline data", "from a host file", "tool ran",
		`hello from Go in the guest, args ["a" "b"]`, `QUOTED=[it's "quoted" $HOME]`, "helpers ok"} {
		require.Contains(t, res.Log, want)
	}
}

// Every module of Modules loads with busybox modprobe (so modules.dep is right), and the devices
// the transports need appear.
func TestVMModules(t *testing.T) {
	t.Parallel()
	script := "modprobe_all " + strings.Join(Modules, " ") + `
lsmod
[ -c /dev/uhid ] || die "no /dev/uhid"
ls /sys/class/udc | grep -q dummy_udc || die "no dummy UDC"
[ -e /sys/devices/platform/vhci_hcd.0/attach ] || die "no vhci_hcd"
mount -t configfs none /sys/kernel/config && [ -d /sys/kernel/config/usb_gadget ] || die "no usb_gadget in configfs"
for t in fido2-token fido2-cred fido2-assert usbip usbipd; do $t --help >/dev/null 2>&1; [ $? -ne 127 ] || die "$t does not run"; done
fido2-token -L
echo modules ok
`
	res := RunT(t, context.Background(), Config{Script: script, Timeout: 2 * time.Minute})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "modules ok")
	for _, m := range []string{"uhid", "usbhid", "xhci_pci", "vhci_hcd", "usbip_host", "dummy_hcd", "usb_f_hid"} {
		require.Regexp(t, "(?m)^"+m+" ", res.Log)
	}
}

// QEMUArgs reach QEMU: a qemu-xhci controller shows up on the guest's PCI bus and gets a USB bus.
func TestVMQEMUArgs(t *testing.T) {
	t.Parallel()
	script := `
grep -l 0x0c0330 /sys/bus/pci/devices/*/class || die "no xHCI controller"
modprobe_all xhci-pci
wait_for /sys/bus/usb/devices/usb1 || die "no USB bus"
echo xhci ok`
	res := RunT(t, context.Background(), Config{Script: script, QEMUArgs: []string{"-device", "qemu-xhci,id=xhci"}})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "xhci ok")
}

func TestVMTimeout(t *testing.T) {
	t.Parallel()
	img := Require(t)
	start := time.Now()
	res, err := img.Run(context.Background(), Config{Script: "sleep 600", Timeout: 2 * time.Second})
	require.ErrorContains(t, err, "timed out")
	require.Less(t, time.Since(start)-res.Wait, time.Minute, "the timeout ends the guest (waiting for a slot aside)")
	require.Zero(t, res.ExitCode)
}

func TestVMCancel(t *testing.T) {
	t.Parallel()
	img := Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	_, err := img.Run(ctx, Config{Script: "sleep 600"})
	require.ErrorIs(t, err, context.Canceled)
}

// lineWatcher calls fn for each console line (the test's view of the console as it is printed).
type lineWatcher struct {
	mu  sync.Mutex
	buf strings.Builder
	fn  func(line string)
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		s := w.buf.String()
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		w.fn(s[:i])
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
	return len(p), nil
}

// host_call runs a host function at that point of the script and waits for it: the guest's next
// line is printed only after the handler returned; errors and unknown calls are statuses.
func TestVMHostCall(t *testing.T) {
	t.Parallel()
	var (
		mu             sync.Mutex
		calls          int
		orderedCorrect = true
	)
	script := `
host_call mark || die "mark failed"
echo after-mark
host_call fail && die "a failing host call succeeded"
host_call nosuch; [ $? = 127 ] || die "unknown host call"
host_call mark || die "second mark"
echo host calls ok`
	res := RunT(t, context.Background(), Config{
		Script: script,
		HostCalls: map[string]func(context.Context) error{
			"mark": func(context.Context) error {
				time.Sleep(300 * time.Millisecond) // a slow host action: the guest must wait for it
				mu.Lock()
				calls++
				mu.Unlock()
				return nil
			},
			"fail": func(context.Context) error { return errors.New("no") },
		},
		Console: &lineWatcher{fn: func(line string) {
			if line == "after-mark" {
				mu.Lock()
				orderedCorrect = calls == 1
				mu.Unlock()
			}
		}},
	})
	require.Equal(t, 0, res.ExitCode)
	require.Contains(t, res.Log, "host calls ok")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 2, calls)
	require.True(t, orderedCorrect, "the guest went on before the host call ended")
	require.NotContains(t, res.Log, "host-reply", "replies are not echoed into the console")
}
