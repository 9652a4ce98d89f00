package gadget

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// fakeConfigfs is a temporary directory that behaves as configfs where it matters: making the
// hid function's directory creates its "dev" attribute, and removing a directory removes its
// attribute files. Every operation is recorded.
type fakeConfigfs struct {
	osFS
	mu  sync.Mutex
	ops []string
	rel func(string) string
}

func (f *fakeConfigfs) record(op, p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ops = append(f.ops, op+" "+f.rel(p))
}

func (f *fakeConfigfs) Mkdir(p string) error {
	f.record("mkdir", p)
	if err := f.osFS.Mkdir(p); err != nil {
		return err
	}
	// configfs makes a new item's default groups and attributes itself.
	var auto []string
	switch {
	case filepath.Base(filepath.Dir(p)) == "usb_gadget":
		auto = []string{"strings", "configs", "functions"}
	case filepath.Base(filepath.Dir(p)) == "configs":
		auto = []string{"strings"}
	case strings.HasSuffix(p, "/functions/hid.fido"):
		return os.WriteFile(filepath.Join(p, "dev"), []byte("240:7\n"), 0o444)
	}
	for _, d := range auto {
		if err := os.Mkdir(filepath.Join(p, d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeConfigfs) WriteFile(p string, data []byte) error {
	f.record("write "+strings.TrimSpace(string(data)), p)
	return f.osFS.WriteFile(p, data)
}

func (f *fakeConfigfs) Symlink(target, link string) error {
	f.record("symlink "+f.rel(target), link)
	return f.osFS.Symlink(target, link)
}

func (f *fakeConfigfs) Remove(p string) error {
	f.record("remove", p)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		// Attributes and default groups go with their item; anything else makes rmdir fail.
		ents, _ := os.ReadDir(p)
		for _, e := range ents {
			if e.Type().IsRegular() || (e.IsDir() && isEmptyDefaultGroup(filepath.Join(p, e.Name()))) {
				os.Remove(filepath.Join(p, e.Name()))
			}
		}
	}
	return os.Remove(p)
}

func isEmptyDefaultGroup(p string) bool {
	switch filepath.Base(p) {
	case "strings", "configs", "functions":
		ents, err := os.ReadDir(p)
		return err == nil && len(ents) == 0
	}
	return false
}

func (f *fakeConfigfs) Ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ops...)
}

// fakeHidg is /dev/hidgN as the gadget sees it; the test is the USB host.
type fakeHidg struct {
	out    chan []byte // output reports from the host (the gadget's Reads)
	in     chan []byte // input reports the gadget writes
	closed chan struct{}
	once   sync.Once
}

func newFakeHidg() *fakeHidg {
	return &fakeHidg{out: make(chan []byte, 16), in: make(chan []byte, 64), closed: make(chan struct{})}
}

func (h *fakeHidg) Read(b []byte) (int, error) {
	select {
	case r := <-h.out:
		return copy(b, r), nil
	case <-h.closed:
		return 0, os.ErrClosed
	}
}

func (h *fakeHidg) Write(b []byte) (int, error) {
	select {
	case h.in <- bytes.Clone(b):
		return len(b), nil
	case <-h.closed:
		return 0, os.ErrClosed
	}
}

func (h *fakeHidg) Close() error {
	h.once.Do(func() { close(h.closed) })
	return nil
}

// WriteReport, ReadReport and Close make the fake the host's ctaphid.ReportConn.
func (h *fakeHidg) WriteReport(_ context.Context, r []byte) error {
	h.out <- bytes.Clone(r)
	return nil
}

func (h *fakeHidg) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case r := <-h.in:
		return r, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type env struct {
	root, configfs, sys, dev string
	fs                       *fakeConfigfs
	key                      *emulator.Key
	mu                       sync.Mutex
	hidgs                    []*fakeHidg
	ready                    chan string
}

func newEnv(t *testing.T, udcs ...string) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{root: root, configfs: filepath.Join(root, "config"), sys: filepath.Join(root, "sys"),
		dev: filepath.Join(root, "dev"), ready: make(chan string, 8)}
	e.fs = &fakeConfigfs{rel: func(p string) string { r, _ := filepath.Rel(e.configfs, p); return r }}
	for _, d := range []string{filepath.Join(e.configfs, "usb_gadget"), filepath.Join(e.sys, "dev/char/240:7"), e.dev} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for _, u := range udcs {
		require.NoError(t, os.MkdirAll(filepath.Join(e.sys, "class/udc", u), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(e.sys, "dev/char/240:7/uevent"), []byte("MAJOR=240\nMINOR=7\nDEVNAME=hidg0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(e.dev, "hidg0"), nil, 0o600))
	key, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { key.Close() })
	e.key = key
	return e
}

func (e *env) gadget(t *testing.T, cfg Config) *Gadget {
	t.Helper()
	cfg.Identity = usbdev.FromPersona(e.key.Persona.HID)
	cfg.Configfs, cfg.SysfsRoot, cfg.DevRoot = e.configfs, e.sys, e.dev
	cfg.OnReady = func(node string) { e.ready <- node }
	g, err := New(e.key.Device, cfg)
	require.NoError(t, err)
	g.fsys = e.fs
	g.open = func(p string) (reportFile, error) {
		require.Equal(t, filepath.Join(e.dev, "hidg0"), p)
		h := newFakeHidg()
		e.mu.Lock()
		e.hidgs = append(e.hidgs, h)
		e.mu.Unlock()
		return h, nil
	}
	return g
}

func (e *env) hidg(i int) *fakeHidg {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.hidgs[i]
}

func (e *env) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.configfs, "usb_gadget", rel))
	require.NoError(t, err)
	return string(b)
}

func (e *env) waitReady(t *testing.T, done <-chan error) string {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Run ended before the gadget was ready: %v", err)
		return ""
	case n := <-e.ready:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("gadget never ready")
		return ""
	}
}

func TestConfigfsLayoutAndLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "dummy_udc.0")
	g := e.gadget(t, Config{})
	require.Equal(t, filepath.Join(e.configfs, "usb_gadget", "fidolab"), g.Dir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	require.Equal(t, filepath.Join(e.dev, "hidg0"), e.waitReady(t, done))

	// The tree a Raspberry Pi or dummy_hcd gets.
	for rel, want := range map[string]string{
		"fidolab/idVendor":                                "0x1209\n",
		"fidolab/idProduct":                               "0xf1d0\n",
		"fidolab/bcdDevice":                               "0x0100\n",
		"fidolab/bcdUSB":                                  "0x0200\n",
		"fidolab/bDeviceClass":                            "0x00\n",
		"fidolab/bMaxPacketSize0":                         "64\n",
		"fidolab/strings/0x409/manufacturer":              "fidolab\n",
		"fidolab/strings/0x409/product":                   "fidolab default key\n",
		"fidolab/strings/0x409/serialnumber":              "0001\n",
		"fidolab/configs/c.1/MaxPower":                    "100\n",
		"fidolab/configs/c.1/bmAttributes":                "0x80\n",
		"fidolab/configs/c.1/strings/0x409/configuration": "FIDO\n",
		"fidolab/functions/hid.fido/protocol":             "0\n",
		"fidolab/functions/hid.fido/subclass":             "0\n",
		"fidolab/functions/hid.fido/report_length":        "64\n",
		"fidolab/UDC":                                     "dummy_udc.0\n",
	} {
		require.Equal(t, want, e.read(t, rel), rel)
	}
	require.Equal(t, string(usbdev.ReportDescriptor), e.read(t, "fidolab/functions/hid.fido/report_desc"))
	target, err := os.Readlink(filepath.Join(g.Dir(), "configs/c.1/hid.fido"))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(g.Dir(), "functions/hid.fido"), target)

	// Reports flow between the host (the fake hidg's other side) and the key.
	ictx, icancel := context.WithTimeout(ctx, 10*time.Second)
	defer icancel()
	hid := ctaphid.NewClient(e.hidg(0))
	_, err = hid.Init(ictx)
	require.NoError(t, err)
	msg := bytes.Repeat([]byte("gadget"), 100)
	got, err := hid.Ping(ictx, msg)
	require.NoError(t, err)
	require.Equal(t, msg, got)
	e.hidg(0).out <- make([]byte, 10) // a short transfer is not a report: dropped, nothing breaks
	got, err = hid.Ping(ictx, []byte("still here"))
	require.NoError(t, err)
	require.Equal(t, []byte("still here"), got)

	// Unplug through the key (as the control API does): the UDC is released, the host's node closed.
	stop := e.key.WatchPlug(func(on bool) { require.NoError(t, g.SetPlugged(on)) })
	defer stop()
	require.NoError(t, e.key.SetPlugged(false))
	require.Equal(t, "\n", e.read(t, "fidolab/UDC"))
	select {
	case <-e.hidg(0).closed:
	default:
		t.Fatal("hidg still open after unplug")
	}
	require.NoError(t, e.key.SetPlugged(true))
	require.Equal(t, "dummy_udc.0\n", e.read(t, "fidolab/UDC"))
	e.waitReady(t, done)
	hid = ctaphid.NewClient(e.hidg(1))
	_, err = hid.Init(ictx)
	require.NoError(t, err, "the replugged gadget answers")

	cancel()
	require.NoError(t, <-done)
	_, err = os.Lstat(g.Dir())
	require.True(t, os.IsNotExist(err), "the gadget tree is removed when Run ends")

	ops := e.fs.Ops()
	// Teardown in the order configfs demands: unbind, unlink the function, then rmdir bottom-up.
	require.Equal(t, []string{
		"write  fidolab/UDC",
		"remove fidolab/configs/c.1/hid.fido",
		"remove fidolab/configs/c.1/strings/0x409",
		"remove fidolab/configs/c.1",
		"remove fidolab/functions/hid.fido",
		"remove fidolab/strings/0x409",
		"remove fidolab",
	}, rel(ops[len(ops)-7:]))
	require.Equal(t, "mkdir fidolab", rel(ops[:1])[0], "the first operation makes the gadget")
	bind := indexOf(ops, "write dummy_udc.0 usb_gadget/fidolab/UDC")
	link := indexOf(ops, "symlink usb_gadget/fidolab/functions/hid.fido usb_gadget/fidolab/configs/c.1/hid.fido")
	desc := indexOf(ops, "write "+strings.TrimSpace(string(usbdev.ReportDescriptor))+" usb_gadget/fidolab/functions/hid.fido/report_desc")
	require.True(t, desc >= 0 && link > desc && bind > link, "the function is complete before it is linked, and linked before binding: %q", ops)
}

func rel(ops []string) []string {
	out := make([]string, len(ops))
	for i, o := range ops {
		out[i] = strings.ReplaceAll(o, "usb_gadget/", "")
	}
	return out
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

func TestRefusesAnExistingGadget(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "dummy_udc.0")
	theirs := filepath.Join(e.configfs, "usb_gadget", "fidolab")
	require.NoError(t, os.MkdirAll(filepath.Join(theirs, "strings"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(theirs, "idVendor"), []byte("0x1d6b\n"), 0o644))
	g := e.gadget(t, Config{})
	err := g.Run(context.Background())
	require.ErrorContains(t, err, "already exists")
	require.Equal(t, "0x1d6b\n", e.read(t, "fidolab/idVendor"), "a foreign gadget is left alone")
	require.Empty(t, e.fs.Ops())

	other := e.gadget(t, Config{Name: "fidolab2"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- other.Run(ctx) }()
	e.waitReady(t, done)
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, "0x1d6b\n", e.read(t, "fidolab/idVendor"))
}

func TestChooseUDC(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		udcs []string
		want string
		err  string
	}{
		"the only one":  {udcs: []string{"fe980000.usb"}, want: "fe980000.usb"},
		"named":         {udcs: []string{"a", "dummy_udc.0"}, want: "dummy_udc.0"},
		"none":          {err: "no USB device controller"},
		"several":       {udcs: []string{"a", "b"}, err: "choose one with --udc: a, b"},
		"named missing": {udcs: []string{"a"}, want: "nope", err: `no UDC "nope"`},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, tc.udcs...)
			cfg := Config{}
			if name == "named" || name == "named missing" {
				cfg.UDC = tc.want
			}
			g := e.gadget(t, cfg)
			got, err := g.chooseUDC()
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestNewRejects(t *testing.T) {
	t.Parallel()
	key, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer key.Close()
	id := usbdev.FromPersona(key.Persona.HID)
	for _, name := range []string{"../escape", "a/b", ".hidden"} {
		_, err := New(key.Device, Config{Identity: id, Name: name})
		require.Error(t, err, name)
	}
	_, err = New(key.Device, Config{})
	require.ErrorContains(t, err, "vendor and product")
}

func TestRunWithoutConfigfs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "dummy_udc.0")
	require.NoError(t, os.RemoveAll(filepath.Join(e.configfs, "usb_gadget")))
	g := e.gadget(t, Config{})
	err := g.Run(context.Background())
	require.ErrorContains(t, err, "libcomposite")
}
