package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type cpioEntry struct {
	name string
	mode uint32
	body string
}

// readCPIO reads a newc archive (or several concatenated) the way the kernel does.
func readCPIO(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	align := func(n int) int { return (n + 3) &^ 3 }
	for off < len(b) {
		require.GreaterOrEqual(t, len(b)-off, 110, "short header at %d", off)
		require.Equal(t, "070701", string(b[off:off+6]))
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			require.NoError(t, err)
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		require.Zero(t, b[off+110+namesize-1], "name not NUL-terminated")
		data := align(off + 110 + namesize)
		body := string(b[data : data+size])
		off = align(data + size)
		if name == "TRAILER!!!" {
			continue
		}
		out = append(out, cpioEntry{name, uint32(mode), body})
	}
	return out
}

func TestCPIOWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	require.NoError(t, w.File("/usr/bin/tool", 0o755, []byte("#!/bin/sh\n")))
	require.NoError(t, w.File("usr/bin/other", 0o644, []byte("abcde")))
	require.NoError(t, w.Symlink("/bin/sh", "/bin/busybox"))
	require.NoError(t, w.Mkdir("/usr"))
	require.NoError(t, w.Close())
	require.Zero(t, buf.Len()%4)
	got := readCPIO(t, buf.Bytes())
	require.Equal(t, []cpioEntry{
		{"usr", cpioDir | 0o755, ""},
		{"usr/bin", cpioDir | 0o755, ""},
		{"usr/bin/tool", cpioRegular | 0o755, "#!/bin/sh\n"},
		{"usr/bin/other", cpioRegular | 0o644, "abcde"},
		{"bin", cpioDir | 0o755, ""},
		{"bin/sh", cpioSymlink | 0o777, "/bin/busybox"},
	}, got)

	_, err := clean("/")
	require.Error(t, err)
	require.Error(t, newCPIOWriter(io.Discard).File("..", 0o644, nil))
}

func TestModuleClosureAndModulesDep(t *testing.T) {
	t.Parallel()
	deps := map[string][]string{
		"uhid": {"hid"}, "hid": nil, "hid_generic": {"hid"}, "usbhid": {"hid", "usbcore"},
		"usbcore": {"usb_common"}, "usb_common": nil, "unrelated": nil, "configfs": nil,
	}
	got, err := moduleClosure([]string{"uhid", "hid-generic", "usbhid", "configfs"}, deps, []string{"kernel/fs/configfs/configfs.ko"})
	require.NoError(t, err)
	require.Equal(t, []string{"hid", "hid_generic", "uhid", "usb_common", "usbcore", "usbhid"}, got)

	_, err = moduleClosure([]string{"nosuch"}, deps, nil)
	require.ErrorContains(t, err, "nosuch")
	_, err = moduleClosure([]string{"a"}, map[string][]string{"a": {"b"}}, nil)
	require.ErrorContains(t, err, "needed by a")

	kf := &kernelFiles{Modules: map[string]string{}, Deps: deps}
	for _, rel := range []string{"kernel/drivers/hid/uhid.ko", "kernel/drivers/hid/hid.ko",
		"kernel/drivers/hid/usbhid/usbhid.ko", "kernel/drivers/usb/core/usbcore.ko", "kernel/drivers/usb/common/usb-common.ko"} {
		kf.Modules[rel] = "/x/" + rel
	}
	// depmod's order: a module's dependencies after it, the deepest last (loaded first).
	require.Equal(t, "kernel/drivers/hid/hid.ko:\n"+
		"kernel/drivers/hid/uhid.ko: kernel/drivers/hid/hid.ko\n"+
		"kernel/drivers/usb/common/usb-common.ko:\n"+
		"kernel/drivers/usb/core/usbcore.ko: kernel/drivers/usb/common/usb-common.ko\n"+
		"kernel/drivers/hid/usbhid/usbhid.ko: kernel/drivers/usb/core/usbcore.ko kernel/drivers/usb/common/usb-common.ko kernel/drivers/hid/hid.ko\n",
		modulesDep(kf))
}

// elfWithSection builds a minimal ELF64 relocatable file with one extra section.
func elfWithSection(name string, data []byte) []byte {
	shstr := append([]byte("\x00.shstrtab\x00"), append([]byte(name), 0)...)
	const ehsize, shentsize = 64, 64
	dataOff := ehsize
	strOff := dataOff + len(data)
	shOff := (strOff + len(shstr) + 7) &^ 7
	b := make([]byte, shOff+3*shentsize)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], 1)  // ET_REL
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 3) // sections: null, .shstrtab, name
	le.PutUint16(b[62:], 1) // shstrndx
	copy(b[dataOff:], data)
	copy(b[strOff:], shstr)
	sh := func(i int, nameOff, typ, off, size int) {
		p := b[shOff+i*shentsize:]
		le.PutUint32(p[0:], uint32(nameOff))
		le.PutUint32(p[4:], uint32(typ))
		le.PutUint64(p[24:], uint64(off))
		le.PutUint64(p[32:], uint64(size))
		le.PutUint64(p[48:], 1)
	}
	sh(1, 1, 3, strOff, len(shstr))  // SHT_STRTAB
	sh(2, 11, 1, dataOff, len(data)) // SHT_PROGBITS
	return b
}

func TestParseModinfo(t *testing.T) {
	t.Parallel()
	ko := elfWithSection(".modinfo", []byte("license=GPL\x00depends=hid,usbcore\x00retpoline=Y\x00name=usbhid\x00vermagic=6.1\x00"))
	mi, err := parseModinfo(ko)
	require.NoError(t, err)
	require.Equal(t, moduleInfo{Name: "usbhid", Depends: []string{"hid", "usbcore"}}, mi)

	mi, err = parseModinfo(elfWithSection(".modinfo", []byte("depends=\x00name=hid-generic\x00")))
	require.NoError(t, err)
	require.Equal(t, moduleInfo{Name: "hid_generic"}, mi)

	_, err = parseModinfo(elfWithSection(".other", []byte("name=x\x00")))
	require.ErrorContains(t, err, "no .modinfo")
	_, err = parseModinfo(elfWithSection(".modinfo", []byte("license=GPL\x00")))
	require.ErrorContains(t, err, "no name")
	_, err = parseModinfo([]byte("not an elf file"))
	require.Error(t, err)
}

func TestExitFromLog(t *testing.T) {
	t.Parallel()
	log := "fidolab-vm: exit 0000 9\nscript output\nfidolab-vm: exit abcd 200 uptime=3.1\n"
	code, ok := exitFromLog(log, "abcd")
	require.True(t, ok)
	require.Equal(t, 200, code)
	_, ok = exitFromLog(log, "ffff")
	require.False(t, ok)
}

func TestSlotsBoundConcurrency(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	release, err := takeSlot(ctx, dir, 1)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = takeSlot(short, dir, 1)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a second guest must wait while the only slot is held")
	// Two slots: the second is free.
	r2, err := takeSlot(ctx, dir, 2)
	require.NoError(t, err)
	r2()
	release()
	r3, err := takeSlot(ctx, dir, 1)
	require.NoError(t, err)
	r3()
}

func TestShellQuote(t *testing.T) {
	t.Parallel()
	require.Equal(t, `'it'\''s'`, shellQuote("it's"))
}

func TestQEMUArgs(t *testing.T) {
	t.Parallel()
	img := &Image{Kernel: "/k/vmlinux"}
	args := img.qemuArgs(Config{QEMUArgs: []string{"-device", "qemu-xhci"}, KernelArgs: []string{"foo=1"}, MemoryMB: 256}, "/r/initrd")
	joined := " " + stringsJoin(args) + " "
	for _, want := range []string{" -accel tcg ", " -M q35 ", " -kernel /k/vmlinux ", " -initrd /r/initrd ", " -m 256 ",
		"isa-debug-exit,iobase=0xf4,iosize=0x04", " quiet ", " foo=1"} {
		require.Contains(t, joined, want)
	}
	require.Equal(t, []string{"-device", "qemu-xhci"}, args[len(args)-2:], "QEMUArgs come last")
	verbose := stringsJoin(img.qemuArgs(Config{Verbose: true}, "/r"))
	require.NotContains(t, verbose, "quiet")
}

func stringsJoin(a []string) string { return strings.Join(a, " ") }

func TestParseKernelMeta(t *testing.T) {
	t.Parallel()
	k, err := parseKernelMeta("Package: linux-image-amd64\nVersion: 6.1.192-2\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\nDescription: Linux for 64-bit PCs (meta-package)\n")
	require.NoError(t, err)
	require.Equal(t, kernelPkg{Name: "linux-image-6.1.0-56-amd64", Version: "6.1.192-2"}, k)
	require.Equal(t, "6.1.0-56-amd64", k.kernelRelease())
	require.Equal(t, "linux-image-6.1.0-56-amd64_6.1.192-2", k.id())
	_, err = parseKernelMeta("Package: linux-image-amd64\nDepends: linux-image-6.1.0-56-amd64\n")
	require.Error(t, err)
}

// TestConsoleLineEnds: CR LF is a line end wherever the serial console's writes split it, and a
// lone CR inside a line is kept.
func TestConsoleLineEnds(t *testing.T) {
	t.Parallel()
	const text = "==report==\r\n{\"a\": 1}\r\n==end==\r\nprogress\rdone\r\n"
	for cut := 0; cut <= len(text); cut++ {
		var lines []string
		c := &consoleBuffer{marker: []byte("never"), onLine: func(l string) { lines = append(lines, l) }}
		_, _ = c.Write([]byte(text[:cut]))
		_, _ = c.Write([]byte(text[cut:]))
		require.Equal(t, "==report==\n{\"a\": 1}\n==end==\nprogress\rdone\n", c.buf.String(), "split at %d", cut)
		require.Equal(t, []string{"==report==", `{"a": 1}`, "==end==", "progress\rdone"}, lines, "split at %d", cut)
	}
}
