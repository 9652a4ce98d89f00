// Package vm boots a throwaway Linux guest under QEMU, runs a shell script in it and returns the
// script's exit status and the serial console: the real kernel that fidolab's transports are
// proven against (UHID, USB gadget on dummy_hcd, usb-redir, USB/IP), with libfido2's command-line
// tools inside.
//
// # Using it from a test
//
//	func TestVMSomething(t *testing.T) {
//		fidolab, err := vm.Binary(ctx, "github.com/fidolab/fidolab/cmd/fidolab") // static build, /usr/bin/fidolab
//		require.NoError(t, err)
//		res := vm.RunT(t, ctx, vm.Config{
//			Script:   "modprobe_all uhid hid-generic\nfidolab serve --transport uhid &\nwait_hidraw 1209 f1d0 || die no hidraw\nfido2-token -L",
//			Files:    []vm.File{fidolab, {Path: "/etc/x.yaml", Data: yaml}},
//			QEMUArgs: []string{"-device", "qemu-xhci,id=xhci", "-chardev", "socket,id=ur0,path=" + sock,
//				"-device", "usb-redir,chardev=ur0,bus=xhci.0"},
//			Timeout:  time.Minute,
//		})
//		require.Equal(t, 0, res.ExitCode, res.Log)
//	}
//
// RunT skips the test with the reason when this machine cannot run a guest (QEMU, busybox-static,
// fido2-tools, usbip or apt's kernel package missing) and fails it instead under CI=true, where
// .ci/deps installs them. Outside tests, Run(ctx, Config) returns (Result, error). Name VM tests
// TestVM…: `go tool -modfile=tools/go.mod task vmtest` runs `go test -run ^TestVM` over the
// module. Guests run in parallel (t.Parallel is fine); at most Slots() of them at once across all
// processes (FIDOLAB_VM_JOBS, default the CPU count), so a loaded `go test ./...` does not push
// guests into their timeouts.
//
// # The guest
//
// q35 machine, TCG (no KVM needed), one CPU, 512 MiB, no network but loopback, no disk: the Debian
// kernel of the package linux-image-amd64 depends on, booted as an ELF vmlinux through its PVH note
// (no firmware or decompression time), and an initramfs with busybox-static, the modules in
// Modules and their dependencies (modprobe works), fido2-token/fido2-cred/fido2-assert and usbip/
// usbipd with their shared libraries, and usb.ids. /init mounts proc, sys, devtmpfs, devpts and
// tmpfs on /run, /tmp and /root, brings up lo, then runs /test.sh (Config.Script) after sourcing
// /lib/fidolab-vm.sh, whose helpers are:
//
//	die MSG                      print FAIL: MSG, exit 1
//	wait_for PATH [S]            wait up to S seconds (10) for PATH to exist
//	wait_gone PATH [S]           wait for PATH to disappear
//	hidraw_of VID PID            print /dev/hidrawN of the HID device with these hex ids
//	wait_hidraw VID PID [S]      wait for it and print it
//	modprobe_all MOD...          modprobe each, die on the first failure
//	fido2_roundtrip DEV PIN      libfido2's tools: getInfo, set PIN, make + verify a credential,
//	                             get + verify an assertion with UV
//	host_call NAME [S]           run Config.HostCalls[NAME] on the host, wait for it (status 0/1/127)
//
// host_call goes over the serial line both ways (the request on the console, the reply on QEMU's
// stdin), so a script can have the host act at a precise point — unplug a key through a host-side
// control API, restart a host-side server — and go on only when it has.
// The status goes back twice: on the console as "fidolab-vm: exit TOKEN N" (TOKEN is random per
// run, so a script cannot forge it) and through QEMU's isa-debug-exit device.
//
// # The cache
//
// Prepare keeps its work under $FIDOLAB_VM_CACHE, else os.UserCacheDir()/fidolab-vm
// (~/.cache/fidolab-vm): kernel/PACKAGE_VERSION/ holds the vmlinux (~65 MB), the kernel config and
// the needed modules (~2 MB), unpacked once per kernel package version (apt-get download, no
// install, no root needed); initramfs-RELEASE-KEY.cpio is the base initramfs, rebuilt when the
// embedded guest scripts or any host file it carries (by path, size and modification time)
// change (images of other checkouts sharing the cache stay; one unused for 3 days is removed);
// gobin/PID/ holds the static Go builds of a test process; slots/ holds the lock files that bound
// parallel guests. apt's answer about the current kernel package is trusted for 12 hours
// (FIDOLAB_VM_REFRESH=1 asks again); without apt or network, the newest cached kernel is used.
// FIDOLAB_VM_KERNEL_DEB=path.deb boots another Debian kernel package. Deleting the directory is
// always safe when no test runs.
//
// Each run writes the base initramfs followed by a small cpio archive of its own (/test.sh, the
// environment, Config.Files) — the kernel unpacks both, the later file winning — so adding a
// binary to a guest costs no image rebuild.
package vm
