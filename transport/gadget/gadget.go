// Package gadget makes the machine fidolab runs on a USB security key for another machine: a
// Linux USB gadget (libcomposite through configfs) with one HID function carrying the FIDO report
// descriptor, bound to a USB device controller (UDC) — the OTG port of a Raspberry Pi Zero or 4,
// or dummy_hcd in a test guest, whose own host side then enumerates it.
//
// The gadget tree (usb_gadget/NAME under configfs) gets the vendor and product IDs, bcdDevice and
// strings of transport/usbdev (from the persona's hid: section), one configuration, and a hid
// function (protocol 0, subclass 0, report_length 64, the FIDO report descriptor). Binding writes
// the UDC's name to NAME/UDC; the function's /dev/hidgN then carries output reports from the host
// (reads) and input reports to it (writes), which the package pumps to and from the key's
// ctaphid.Device. Unplugging (SetPlugged(false)) unbinds the UDC, which the host sees as a
// disconnect; replugging binds it again. When Run ends the tree is removed.
package gadget

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// DefaultConfigfs is where configfs is mounted on every common distribution.
const DefaultConfigfs = "/sys/kernel/config"

// DefaultName is the gadget's directory under usb_gadget/.
const DefaultName = "fidolab"

// Fixed parts of the gadget: one configuration, one HID function named "fido".
const (
	configDir   = "configs/c.1"
	functionDir = "functions/hid.fido"
	langDir     = "0x409"
	maxPowerMA  = 100
	// bmAttributes of the configuration: bus powered, no remote wakeup.
	configAttributes = 0x80
)

// Config configures a gadget. Identity is the only field without a usable zero value.
type Config struct {
	// Identity gives idVendor, idProduct, bcdDevice and the strings.
	Identity usbdev.Identity
	// Configfs is configfs's mount point; "" means DefaultConfigfs.
	Configfs string
	// Name is the gadget's directory name; "" means DefaultName.
	Name string
	// UDC is the device controller to bind (an entry of /sys/class/udc); "" means the only one.
	UDC string
	// Descriptor is the HID report descriptor; nil means usbdev.ReportDescriptor.
	Descriptor []byte
	// Logger gets the gadget's life at info and the report traffic at debug; nil discards.
	Logger *slog.Logger
	// OnReady is called each time the gadget is bound and its /dev/hidgN is open.
	OnReady func(hidg string)
	// SysfsRoot and DevRoot are where UDCs and device nodes are looked up; "" means /sys and /dev.
	SysfsRoot, DevRoot string
}

// Gadget is one key served as a USB gadget.
type Gadget struct {
	dev *ctaphid.Device
	cfg Config
	log *slog.Logger
	dir string // the gadget's directory in configfs
	// created is set once build made dir: only then may teardown remove anything.
	created bool

	fsys fsys                                  // configfs operations; recorded in unit tests
	open func(path string) (reportFile, error) // opens /dev/hidgN

	mu      sync.Mutex
	plugged bool // wanted state
	bound   bool
	udc     string
	port    *ctaphid.Port
	hidg    reportFile
	running bool
}

// reportFile is /dev/hidgN: each Read returns one output report, each Write sends one input report.
type reportFile interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	Close() error
}

// New checks cfg and prepares a gadget for d; nothing is written before Run. The gadget starts
// plugged in.
func New(d *ctaphid.Device, cfg Config) (*Gadget, error) {
	if cfg.Configfs == "" {
		cfg.Configfs = DefaultConfigfs
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Name != filepath.Base(cfg.Name) || strings.HasPrefix(cfg.Name, ".") {
		return nil, fmt.Errorf("gadget: name %q is not a plain directory name", cfg.Name)
	}
	if cfg.Descriptor == nil {
		cfg.Descriptor = usbdev.ReportDescriptor
	}
	if cfg.SysfsRoot == "" {
		cfg.SysfsRoot = "/sys"
	}
	if cfg.DevRoot == "" {
		cfg.DevRoot = "/dev"
	}
	if cfg.Identity.VendorID == 0 && cfg.Identity.ProductID == 0 {
		return nil, errors.New("gadget: the persona has no USB vendor and product ID")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gadget{dev: d, cfg: cfg, log: log.With("transport", "gadget"), plugged: true,
		dir:  filepath.Join(cfg.Configfs, "usb_gadget", cfg.Name),
		fsys: osFS{}, open: func(p string) (reportFile, error) { return os.OpenFile(p, os.O_RDWR, 0) }}, nil
}

// Dir is the gadget's directory in configfs.
func (g *Gadget) Dir() string { return g.dir }

// Run writes the gadget tree, binds it if it is plugged in, pumps reports until ctx ends, then
// unbinds and removes the tree. An error means the gadget could not be set up or its device
// node failed.
func (g *Gadget) Run(ctx context.Context) error {
	udc, err := g.chooseUDC()
	if err != nil {
		return err
	}
	if err := g.build(); err != nil {
		if g.created {
			err = errors.Join(err, g.teardown())
		}
		return err
	}
	g.mu.Lock()
	g.udc, g.running = udc, true
	var berr error
	if g.plugged {
		berr = g.bindLocked()
	}
	g.mu.Unlock()
	if berr != nil {
		g.mu.Lock()
		g.running = false
		g.mu.Unlock()
		return errors.Join(berr, g.teardown())
	}
	<-ctx.Done()
	g.mu.Lock()
	g.running = false
	g.unbindLocked()
	g.mu.Unlock()
	return g.teardown()
}

// SetPlugged unbinds (false) or binds again (true) the gadget, which the host sees as the key
// pulled out or plugged in. Before Run it sets the state Run starts in.
func (g *Gadget) SetPlugged(on bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.plugged = on
	if !g.running {
		return nil
	}
	if on && !g.bound {
		return g.bindLocked()
	}
	if !on && g.bound {
		g.unbindLocked()
	}
	return nil
}

// chooseUDC returns cfg.UDC if it exists, or the only UDC of the machine.
func (g *Gadget) chooseUDC() (string, error) {
	class := filepath.Join(g.cfg.SysfsRoot, "class/udc")
	ents, err := os.ReadDir(class)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("gadget: listing %s: %w", class, err)
	}
	var udcs []string
	for _, e := range ents {
		udcs = append(udcs, e.Name())
	}
	sort.Strings(udcs)
	switch {
	case g.cfg.UDC != "" && contains(udcs, g.cfg.UDC):
		return g.cfg.UDC, nil
	case g.cfg.UDC != "":
		return "", fmt.Errorf("gadget: no UDC %q in %s (have: %s)", g.cfg.UDC, class, strings.Join(udcs, ", "))
	case len(udcs) == 1:
		return udcs[0], nil
	case len(udcs) == 0:
		return "", fmt.Errorf("gadget: no USB device controller in %s (load dwc2 on a Raspberry Pi, dummy_hcd for a test)", class)
	default:
		return "", fmt.Errorf("gadget: several UDCs, choose one with --udc: %s", strings.Join(udcs, ", "))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// build writes the gadget tree. It refuses to touch a gadget that already exists: it may be
// another program's, or a running fidolab's.
func (g *Gadget) build() error {
	root := filepath.Join(g.cfg.Configfs, "usb_gadget")
	if _, err := os.Stat(root); err != nil {
		return fmt.Errorf("gadget: %s: %w (mount configfs and modprobe libcomposite usb_f_hid)", root, err)
	}
	if _, err := os.Lstat(g.dir); err == nil {
		return fmt.Errorf("gadget: %s already exists: another gadget, or one left by a killed fidolab "+
			"(choose another --gadget-name, or remove it: see docs/transports.md)", g.dir)
	}
	id := g.cfg.Identity
	steps := []struct {
		mkdir, file, value string
		raw                []byte
	}{
		{mkdir: ""},
		{file: "idVendor", value: fmt.Sprintf("0x%04x", id.VendorID)},
		{file: "idProduct", value: fmt.Sprintf("0x%04x", id.ProductID)},
		{file: "bcdDevice", value: fmt.Sprintf("0x%04x", id.BCDDevice)},
		{file: "bcdUSB", value: "0x0200"},
		{file: "bDeviceClass", value: "0x00"}, // class at the interface: HID
		{file: "bDeviceSubClass", value: "0x00"},
		{file: "bDeviceProtocol", value: "0x00"},
		{file: "bMaxPacketSize0", value: "64"},
		{mkdir: "strings/" + langDir},
		{file: "strings/" + langDir + "/manufacturer", value: id.Manufacturer},
		{file: "strings/" + langDir + "/product", value: id.Product},
		{file: "strings/" + langDir + "/serialnumber", value: id.Serial},
		{mkdir: configDir},
		{file: configDir + "/MaxPower", value: fmt.Sprint(maxPowerMA)},
		{file: configDir + "/bmAttributes", value: fmt.Sprintf("0x%02x", configAttributes)},
		{mkdir: configDir + "/strings/" + langDir},
		{file: configDir + "/strings/" + langDir + "/configuration", value: "FIDO"},
		{mkdir: functionDir},
		{file: functionDir + "/protocol", value: "0"},
		{file: functionDir + "/subclass", value: "0"},
		{file: functionDir + "/report_length", value: fmt.Sprint(usbdev.ReportSize)},
		{file: functionDir + "/report_desc", raw: g.cfg.Descriptor},
	}
	for _, s := range steps {
		var err error
		switch {
		case s.file != "":
			data := s.raw
			if data == nil {
				data = []byte(s.value + "\n")
			}
			err = g.fsys.WriteFile(filepath.Join(g.dir, s.file), data)
		default:
			err = g.fsys.Mkdir(filepath.Join(g.dir, s.mkdir))
			if err == nil && s.mkdir == "" {
				g.created = true
			}
		}
		if err != nil {
			return fmt.Errorf("gadget: writing %s: %w", g.dir, err)
		}
	}
	link := filepath.Join(g.dir, configDir, filepath.Base(functionDir))
	if err := g.fsys.Symlink(filepath.Join(g.dir, functionDir), link); err != nil {
		return fmt.Errorf("gadget: adding the hid function to the configuration: %w", err)
	}
	g.log.Info("gadget: tree written", "dir", g.dir)
	return nil
}

// teardown removes what build wrote, in the reverse order configfs requires. It removes only
// the directories this package creates, so a foreign gadget is never touched (build refuses it).
func (g *Gadget) teardown() error {
	if !g.created {
		return nil
	}
	var errs []error
	for _, p := range []string{
		filepath.Join(configDir, filepath.Base(functionDir)), // the symlink
		filepath.Join(configDir, "strings", langDir),
		configDir,
		functionDir,
		filepath.Join("strings", langDir),
		"",
	} {
		if err := g.fsys.Remove(filepath.Join(g.dir, p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gadget: removing %s: %w", g.dir, err)
	}
	g.created = false
	g.log.Info("gadget: tree removed", "dir", g.dir)
	return nil
}

// bindLocked binds the gadget to the UDC, opens /dev/hidgN and starts pumping.
func (g *Gadget) bindLocked() error {
	if err := g.fsys.WriteFile(filepath.Join(g.dir, "UDC"), []byte(g.udc+"\n")); err != nil {
		return fmt.Errorf("gadget: binding to UDC %s: %w (is it used by another gadget?)", g.udc, err)
	}
	g.bound = true
	node, err := g.hidgNode()
	if err == nil {
		var f reportFile
		if f, err = g.open(node); err == nil {
			g.hidg = f
			g.port = g.dev.Open(func(r []byte) { g.write(f, r) })
			go g.pump(f, g.port)
			g.log.Info("gadget: bound", "udc", g.udc, "hidg", node)
			if g.cfg.OnReady != nil {
				go g.cfg.OnReady(node)
			}
			return nil
		}
	}
	g.unbindLocked()
	return fmt.Errorf("gadget: %w", err)
}

// unbindLocked detaches the gadget from the UDC (a disconnect for the host) and stops pumping.
func (g *Gadget) unbindLocked() {
	if !g.bound {
		return
	}
	if err := g.fsys.WriteFile(filepath.Join(g.dir, "UDC"), []byte("\n")); err != nil {
		g.log.Warn("gadget: unbinding", "err", err)
	}
	g.bound = false
	if g.hidg != nil {
		g.hidg.Close() // ends pump
		g.hidg = nil
	}
	if g.port != nil {
		g.port.Close() // the request in progress is cancelled, as on a real unplug
		g.port = nil
	}
	g.log.Info("gadget: unbound (unplugged)", "udc", g.udc)
}

// hidgNode finds the function's character device: configfs shows its MAJOR:MINOR in "dev", and
// sysfs names the node.
func (g *Gadget) hidgNode() (string, error) {
	b, err := os.ReadFile(filepath.Join(g.dir, functionDir, "dev"))
	if err != nil {
		return "", fmt.Errorf("reading the hid function's device number: %w", err)
	}
	devno := strings.TrimSpace(string(b))
	ue := filepath.Join(g.cfg.SysfsRoot, "dev/char", devno, "uevent")
	deadline := time.Now().Add(5 * time.Second)
	for {
		if u, err := os.ReadFile(ue); err == nil {
			for line := range strings.Lines(string(u)) {
				if name, ok := strings.CutPrefix(strings.TrimSpace(line), "DEVNAME="); ok {
					node := filepath.Join(g.cfg.DevRoot, name)
					if _, err := os.Stat(node); err == nil {
						return node, nil
					}
				}
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no device node for hid function %s (%s)", devno, ue)
		}
		time.Sleep(time.Millisecond)
	}
}

// pump carries output reports from the host to the key until f is closed.
func (g *Gadget) pump(f reportFile, p *ctaphid.Port) {
	buf := make([]byte, usbdev.ReportSize+1)
	for {
		n, err := f.Read(buf)
		if err != nil {
			g.log.Debug("gadget: read ended", "err", err)
			return
		}
		if n != usbdev.ReportSize {
			g.log.Debug("gadget: output report of unexpected size dropped", "len", n)
			continue
		}
		p.Input(buf[:n])
	}
}

// write sends one input report to the host. It waits while the host has not fetched the previous
// one (an interrupt IN endpoint NAKs until polled).
func (g *Gadget) write(f reportFile, r []byte) {
	if _, err := f.Write(r); err != nil {
		g.log.Debug("gadget: input report dropped", "err", err)
	}
}

// fsys is the few file operations configfs needs.
type fsys interface {
	Mkdir(path string) error
	WriteFile(path string, data []byte) error
	Symlink(target, link string) error
	Remove(path string) error
}

type osFS struct{}

func (osFS) Mkdir(p string) error { return os.Mkdir(p, 0o755) }

// WriteFile writes an attribute in one write(2), as configfs wants it (no truncation needed).
func (osFS) WriteFile(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	return errors.Join(werr, f.Close())
}

func (osFS) Symlink(target, link string) error { return os.Symlink(target, link) }
func (osFS) Remove(p string) error             { return os.Remove(p) }
