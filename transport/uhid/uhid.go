// Package uhid shows the key to the Linux kernel as a HID device through /dev/uhid, in pure Go:
// the kernel's HID core binds it (hid-generic), a /dev/hidrawN node appears, and every hidraw
// client — libfido2, Chromium and Firefox, python-fido2 — talks to the key as to a USB security
// key.
//
// The device is created with UHID_CREATE2: the FIDO report descriptor and the vendor and product
// IDs, name and serial of transport/usbdev (from the persona's hid: section), on bus USB — libfido2
// on Linux lists only hidraw devices whose bus is USB. An output report written to hidraw arrives
// as UHID_OUTPUT (65 bytes: report number 0, then the 64-byte CTAPHID report) and goes to the
// key's ctaphid.Device; the key's reports go back with UHID_INPUT2. GET_REPORT and SET_REPORT of
// feature reports fail with EIO, as on a FIDO key (it has none); a SET_REPORT of an output report
// is an output report. OPEN and CLOSE (first open, last close of the hidraw node) do not reach
// the key: a USB key does not see a host process close its file either, so a request in progress
// goes on. Unplugging (SetPlugged(false)) destroys the UHID device and replugging creates it
// again, so the host sees the hidraw node go and come back, as with a real key.
//
// /dev/uhid needs root (or a udev rule, see docs/transports.md) and the kernel module uhid; the
// hidraw node needs hid-generic.
package uhid

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// DefaultPath is the UHID character device.
const DefaultPath = "/dev/uhid"

// Config configures a Device. Identity is the only field without a usable zero value.
type Config struct {
	// Identity gives the vendor and product IDs, bcdDevice (the HID version), the name
	// ("Manufacturer Product") and the serial number (HID_UNIQ).
	Identity usbdev.Identity
	// Path is the UHID device; "" means DefaultPath.
	Path string
	// Bus is the HID bus type; 0 means BusUSB (libfido2 ignores other buses).
	Bus uint16
	// Descriptor is the HID report descriptor; nil means usbdev.ReportDescriptor.
	Descriptor []byte
	// Logger gets the device's life (created, ready, unplugged) at info and every event at debug.
	Logger *slog.Logger
	// OnReady is called, from its own goroutine, each time the device's hidraw node exists: after
	// Run creates it and after every replug, with the time since the device was created.
	OnReady func(hidraw string, sinceCreate time.Duration)
	// SysfsRoot and DevRoot are where hidraw nodes are looked up; "" means /sys and /dev.
	SysfsRoot, DevRoot string
}

// physSeq numbers the devices this process creates.
var physSeq atomic.Uint64

// readyTimeout is how long a created device may take to get a hidraw node before a warning.
const readyTimeout = 3 * time.Second

// Device is one key shown through UHID. It is created by New, lives while Run runs, and can be
// unplugged and replugged with SetPlugged at any time.
type Device struct {
	dev  *ctaphid.Device
	cfg  Config
	log  *slog.Logger
	name string

	open func(path string) (eventFile, error) // os.OpenFile; a fake kernel in unit tests

	wmu   sync.Mutex // one write to /dev/uhid at a time; guards f's writes and inbuf
	f     eventFile
	inbuf []byte

	mu       sync.Mutex
	plugged  bool // wanted state
	created  bool // the kernel has our device
	port     *ctaphid.Port
	gen      int // creation counter: phys names and stale ready watchers
	phys     string
	started  bool
	opened   bool
	hidraw   string
	changed  chan struct{} // closed and replaced whenever hidraw changes
	runStart time.Time
}

// New prepares a UHID device for d; nothing touches the kernel before Run. The device starts
// plugged in.
func New(d *ctaphid.Device, cfg Config) *Device {
	if cfg.Path == "" {
		cfg.Path = DefaultPath
	}
	if cfg.Bus == 0 {
		cfg.Bus = BusUSB
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	name := strings.TrimSpace(cfg.Identity.Manufacturer + " " + cfg.Identity.Product)
	if name == "" {
		name = "fidolab FIDO key"
	}
	return &Device{dev: d, cfg: cfg, log: log.With("transport", "uhid"), name: name, plugged: true,
		changed: make(chan struct{}), open: openFile}
}

// eventFile is /dev/uhid: each Read returns one event, each Write takes one.
type eventFile interface {
	Read(b []byte) (int, error)
	Write(b []byte) (int, error)
	Close() error
}

// openFile opens the UHID device. Go registers it with the runtime poller (the driver supports
// poll), so Close wakes a Read in progress.
func openFile(path string) (eventFile, error) { return os.OpenFile(path, os.O_RDWR, 0) }

// Run opens /dev/uhid, creates the device if it is plugged in, and serves it until ctx ends; then
// it destroys the device and returns nil. An error means /dev/uhid could not be used.
func (u *Device) Run(ctx context.Context) error {
	start := time.Now()
	f, err := u.open(u.cfg.Path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("uhid: %s does not exist (modprobe uhid): %w", u.cfg.Path, err)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("uhid: %w (run as root, or give your user %s with the udev rule in docs/transports.md)", err, u.cfg.Path)
		}
		return fmt.Errorf("uhid: %w", err)
	}
	u.wmu.Lock()
	u.f = f
	u.wmu.Unlock()
	u.mu.Lock()
	u.runStart = start
	var cerr error
	if u.plugged {
		cerr = u.createLocked()
	}
	u.mu.Unlock()
	if cerr != nil {
		u.shutdown()
		return cerr
	}
	stop := context.AfterFunc(ctx, u.shutdown)
	defer stop()

	buf := make([]byte, EventSize)
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			stop()
			u.shutdown()
			return fmt.Errorf("uhid: reading %s: %w", u.cfg.Path, err)
		}
		ev, err := ParseEvent(buf[:n])
		if err != nil {
			u.log.Warn("uhid: malformed event", "err", err)
			continue
		}
		u.handle(ev)
	}
}

// shutdown destroys the device and closes /dev/uhid (which would destroy it too).
func (u *Device) shutdown() {
	u.mu.Lock()
	u.destroyLocked()
	u.mu.Unlock()
	u.wmu.Lock()
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	u.wmu.Unlock()
}

// SetPlugged destroys (false) or creates again (true) the kernel's device, so the host sees the
// key pulled out or plugged in. Before Run it sets the state Run starts in.
func (u *Device) SetPlugged(on bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.plugged = on
	u.wmu.Lock()
	running := u.f != nil
	u.wmu.Unlock()
	if !running {
		return nil
	}
	if on && !u.created {
		return u.createLocked()
	}
	if !on && u.created {
		u.destroyLocked()
	}
	return nil
}

// Hidraw returns the device's /dev/hidrawN, "" while it has none (unplugged, or not bound yet).
func (u *Device) Hidraw() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hidraw
}

// Ready waits until the device has a hidraw node and returns it.
func (u *Device) Ready(ctx context.Context) (string, error) {
	for {
		u.mu.Lock()
		node, ch := u.hidraw, u.changed
		u.mu.Unlock()
		if node != "" {
			return node, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// setHidrawLocked records the hidraw node ("" when gone) and wakes Ready.
func (u *Device) setHidrawLocked(node string) {
	u.hidraw = node
	close(u.changed)
	u.changed = make(chan struct{})
}

func (u *Device) createLocked() error {
	u.gen++
	// HID_PHYS finds our hidraw node in sysfs, so it is unique per device and per creation, also
	// among several keys of one process.
	u.phys = fmt.Sprintf("fidolab/uhid-%d-%d", os.Getpid(), physSeq.Add(1))
	id := u.cfg.Identity
	ev, err := Create2{
		Name: truncate(u.name, nameLen-1), Phys: u.phys, Uniq: truncate(id.Serial, uniqLen-1),
		Bus: u.cfg.Bus, Vendor: uint32(id.VendorID), Product: uint32(id.ProductID), Version: uint32(id.BCDDevice),
		Descriptor: u.cfg.Descriptor,
	}.Encode()
	if err != nil {
		return err
	}
	u.port = u.dev.Open(u.writeInput)
	created := time.Now()
	if err := u.write(ev); err != nil {
		p := u.port
		u.port = nil
		p.Close()
		return fmt.Errorf("uhid: UHID_CREATE2: %w", err)
	}
	u.created, u.started, u.opened = true, false, false
	u.log.Info("uhid: device created", "name", u.name, "vid", fmt.Sprintf("%04x", id.VendorID),
		"pid", fmt.Sprintf("%04x", id.ProductID), "serial", id.Serial, "phys", u.phys)
	go u.awaitHidraw(u.gen, u.phys, created)
	return nil
}

func (u *Device) destroyLocked() {
	if !u.created {
		return
	}
	if err := u.write(encodeDestroy()); err != nil {
		u.log.Warn("uhid: UHID_DESTROY", "err", err)
	}
	u.created, u.started, u.opened = false, false, false
	u.setHidrawLocked("")
	u.gen++ // a ready watcher of the destroyed device must not report it
	p := u.port
	u.port = nil
	u.log.Info("uhid: device destroyed (unplugged)")
	if p != nil {
		p.Close() // the request in progress is cancelled, as on a real unplug
	}
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\x00", "")
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (u *Device) write(ev []byte) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	if u.f == nil {
		return os.ErrClosed
	}
	_, err := u.f.Write(ev)
	return err
}

// writeInput is the Port's output: one 64-byte input report per UHID_INPUT2.
func (u *Device) writeInput(report []byte) {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	if u.f == nil {
		return
	}
	ev, err := encodeInput2(u.inbuf, report)
	if err != nil {
		return
	}
	u.inbuf = ev
	if _, err := u.f.Write(ev); err != nil {
		// The device was destroyed under the port (an unplug in progress): the report is lost,
		// as it would be on the wire.
		u.log.Debug("uhid: input report dropped", "err", err)
	}
}

func (u *Device) handle(ev Event) {
	u.log.Debug("uhid: event", "type", ev.Type, "len", len(ev.Data), "rtype", ev.ReportType)
	switch ev.Type {
	case EventStart:
		u.mu.Lock()
		u.started = true
		u.mu.Unlock()
	case EventStop:
		u.mu.Lock()
		u.started = false
		u.mu.Unlock()
	case EventOpen, EventClose:
		u.mu.Lock()
		u.opened = ev.Type == EventOpen
		u.mu.Unlock()
	case EventOutput:
		if ev.ReportType != OutputReport {
			return
		}
		u.output(ev.Data)
	case EventGetReport:
		// No feature or input report can be read through the control pipe of a FIDO key.
		if err := u.write(encodeGetReportReply(ev.ID, errnoEIO, nil)); err != nil {
			u.log.Warn("uhid: GET_REPORT_REPLY", "err", err)
		}
	case EventSetReport:
		errno := uint16(errnoEIO)
		if ev.ReportType == OutputReport && u.output(ev.Data) {
			errno = errnoOK
		}
		if err := u.write(encodeSetReportReply(ev.ID, errno)); err != nil {
			u.log.Warn("uhid: SET_REPORT_REPLY", "err", err)
		}
	}
}

// output hands an output report to the key; false when it is not a FIDO report.
func (u *Device) output(data []byte) bool {
	r, ok := ctapReport(data, ctaphid.ReportSize)
	if !ok {
		u.log.Debug("uhid: output report of unexpected size dropped", "len", len(data))
		return false
	}
	u.mu.Lock()
	p := u.port
	u.mu.Unlock()
	if p != nil {
		p.Input(r)
	}
	return true
}

// awaitHidraw waits for the hidraw node of creation gen (found in sysfs by its phys, once its
// /dev node exists) and reports it. It sleeps on inotify events of /dev between looks, so it takes
// no CPU from the kernel work it waits for (that matters in a one-CPU test guest). hid-generic
// binds within milliseconds of CREATE2; without a driver there is no node, which is worth a warning.
func (u *Device) awaitHidraw(gen int, phys string, created time.Time) {
	w := watchDir(u.cfg.DevRoot)
	defer w.Close()
	deadline := created.Add(readyTimeout)
	warned := false
	for {
		u.mu.Lock()
		stale := u.gen != gen
		u.mu.Unlock()
		if stale {
			return
		}
		if node := findHidraw(u.cfg.SysfsRoot, u.cfg.DevRoot, phys); node != "" {
			after := time.Since(created)
			u.mu.Lock()
			if u.gen != gen {
				u.mu.Unlock()
				return
			}
			u.setHidrawLocked(node)
			sinceRun := time.Since(u.runStart)
			u.mu.Unlock()
			u.log.Info("uhid: ready", "hidraw", node, "after_create", after, "after_start", sinceRun)
			if u.cfg.OnReady != nil {
				u.cfg.OnReady(node, after)
			}
			return
		}
		if !warned && time.Now().After(deadline) {
			warned = true
			u.log.Warn("uhid: no hidraw node yet; is hid-generic loaded? (modprobe hid-generic)", "phys", phys)
		}
		w.Wait(20 * time.Millisecond)
	}
}

// findHidraw returns /dev/hidrawN of the HID device whose HID_PHYS is phys, once the node exists.
func findHidraw(sysfs, dev, phys string) string {
	uevents, _ := filepath.Glob(filepath.Join(sysfs, "bus/hid/devices/*/uevent"))
	for _, ue := range uevents {
		b, err := os.ReadFile(ue)
		if err != nil || !strings.Contains("\n"+string(b), "\nHID_PHYS="+phys+"\n") {
			continue
		}
		nodes, _ := filepath.Glob(filepath.Join(filepath.Dir(ue), "hidraw/hidraw*"))
		for _, n := range nodes {
			p := filepath.Join(dev, filepath.Base(n))
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	return ""
}
