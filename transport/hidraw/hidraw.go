// Package hidraw reaches a real FIDO key through a Linux /dev/hidrawN node, in pure Go (no cgo):
// it lists FIDO devices from sysfs, recognises one by the usage page 0xF1D0 / usage 0x01 of its
// report descriptor, and carries 64-byte CTAPHID reports to and from it as a ctaphid.ReportConn,
// so the host-side ctaphid.Client and harness/client run on a hardware key unchanged.
package hidraw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/transport/hiddesc"
)

// Bus types of linux/input.h, as HID_ID and HIDIOCGRAWINFO report them.
const (
	BusUSB       = 0x03
	BusBluetooth = 0x05
	BusVirtual   = 0x06
)

// Device is one hidraw node as sysfs describes it.
type Device struct {
	// Path is the device node, e.g. /dev/hidraw3.
	Path string `json:"path"`
	// Bus is the HID bus (3 USB, 5 Bluetooth, 6 virtual).
	Bus       uint16 `json:"bus"`
	VendorID  uint16 `json:"vendorId"`
	ProductID uint16 `json:"productId"`
	// Product is HID_NAME: for USB keys the manufacturer and product strings.
	Product string `json:"product"`
	// Serial is HID_UNIQ: the USB serial number string, often empty.
	Serial string `json:"serial,omitempty"`
	// Phys is HID_PHYS, where the key is plugged in (usb-0000:00:14.0-2/input1): it survives a
	// replug into the same port, unlike the node's number.
	Phys string `json:"phys,omitempty"`
	// SysPath is the HID device's directory under /sys/devices.
	SysPath string `json:"sysPath"`
	// FIDO is true when the report descriptor has a CTAPHID application collection.
	FIDO bool `json:"fido"`
	// Accessible is true when this process may open the node for reading and writing.
	Accessible bool `json:"accessible"`
	// Problem says why the device could not be fully described (unreadable descriptor…).
	Problem string `json:"problem,omitempty"`
}

// ID renders vendor and product as "1050:0407".
func (d Device) ID() string { return fmt.Sprintf("%04x:%04x", d.VendorID, d.ProductID) }

// BusName names the bus for people.
func (d Device) BusName() string {
	switch d.Bus {
	case BusUSB:
		return "usb"
	case BusBluetooth:
		return "bluetooth"
	case BusVirtual:
		return "virtual"
	}
	return fmt.Sprintf("bus 0x%02x", d.Bus)
}

// SameKey reports whether o is the same physical key as d seen again (after a replug, when the node
// number may have changed): the same model (SameModel) in the same port when both know it.
func (d Device) SameKey(o Device) bool {
	return d.SameModel(o) && (d.Phys == "" || o.Phys == "" || d.Phys == o.Phys)
}

// SameModel reports whether o has d's bus, vendor, product and serial: the same key if it is the
// only one (a key replugged into another port, or a UHID device whose phys names each creation).
func (d Device) SameModel(o Device) bool {
	return d.VendorID == o.VendorID && d.ProductID == o.ProductID && d.Serial == o.Serial && d.Bus == o.Bus
}

// Enumerator lists hidraw devices from a sysfs tree. The zero value reads /sys and /dev; tests point
// it at a tree of their own.
type Enumerator struct {
	Sys string // sysfs mount point, default /sys
	Dev string // device node directory, default /dev
}

func (e Enumerator) roots() (sys, dev string) {
	sys, dev = e.Sys, e.Dev
	if sys == "" {
		sys = "/sys"
	}
	if dev == "" {
		dev = "/dev"
	}
	return sys, dev
}

// List returns the FIDO devices, ordered by node number.
func List() ([]Device, error) { return Enumerator{}.List(false) }

// List returns the hidraw devices, ordered by node number: only FIDO ones unless all is set. A system
// without hidraw (no /sys/class/hidraw) has none; that is not an error.
func (e Enumerator) List(all bool) ([]Device, error) {
	sys, dev := e.roots()
	dir := filepath.Join(sys, "class", "hidraw")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hidraw: listing %s: %w", dir, err)
	}
	var out []Device
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasPrefix(name, "hidraw") {
			continue
		}
		d := e.describe(filepath.Join(dir, name), filepath.Join(dev, name))
		if all || d.FIDO {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return nodeNumber(out[i].Path) < nodeNumber(out[j].Path) })
	return out, nil
}

// Describe returns what sysfs says of one node, /dev/hidrawN.
func (e Enumerator) Describe(path string) (Device, error) {
	sys, _ := e.roots()
	name := filepath.Base(path)
	class := filepath.Join(sys, "class", "hidraw", name)
	if !strings.HasPrefix(name, "hidraw") {
		return Device{}, fmt.Errorf("hidraw: %s is not a hidraw node (want /dev/hidrawN)", path)
	}
	if _, err := os.Stat(class); err != nil {
		return Device{}, fmt.Errorf("hidraw: no %s in sysfs (%w): is %s a hidraw node?", name, err, path)
	}
	return e.describe(class, path), nil
}

func (e Enumerator) describe(class, node string) Device {
	d := Device{Path: node}
	devDir := filepath.Join(class, "device")
	if p, err := filepath.EvalSymlinks(devDir); err == nil {
		d.SysPath = p
	} else {
		d.SysPath = devDir
	}
	var problems []string
	if ue, err := readLimited(filepath.Join(devDir, "uevent"), 16<<10); err != nil {
		problems = append(problems, err.Error())
	} else if err := d.applyUevent(ParseUevent(ue)); err != nil {
		problems = append(problems, err.Error())
	}
	if rd, err := readLimited(filepath.Join(devDir, "report_descriptor"), hiddesc.MaxSize); err != nil {
		problems = append(problems, err.Error())
	} else if desc, err := hiddesc.Parse(rd); err != nil {
		problems = append(problems, err.Error())
	} else {
		d.FIDO = desc.FIDO() != nil
	}
	d.Accessible = accessible(node)
	d.Problem = strings.Join(problems, "; ")
	return d
}

// applyUevent fills the identity from a HID device's uevent.
func (d *Device) applyUevent(kv map[string]string) error {
	d.Product, d.Serial, d.Phys = kv["HID_NAME"], kv["HID_UNIQ"], kv["HID_PHYS"]
	id, ok := kv["HID_ID"]
	if !ok {
		return errors.New("hidraw: uevent has no HID_ID")
	}
	bus, vid, pid, err := ParseHIDID(id)
	if err != nil {
		return err
	}
	d.Bus, d.VendorID, d.ProductID = bus, vid, pid
	return nil
}

// ParseUevent parses a sysfs uevent file: KEY=VALUE lines. Lines without '=' are ignored.
func ParseUevent(b []byte) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k != "" {
			kv[k] = v
		}
	}
	return kv
}

// ParseHIDID parses HID_ID, "BBBB:VVVVVVVV:PPPPPPPP" in hex (the kernel prints %04X:%08X:%08X).
func ParseHIDID(s string) (bus, vendor, product uint16, err error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, 0, 0, fmt.Errorf("hidraw: HID_ID %q is not BUS:VENDOR:PRODUCT", s)
	}
	var v [3]uint64
	for i, p := range parts {
		if p == "" || len(p) > 8 {
			return 0, 0, 0, fmt.Errorf("hidraw: HID_ID %q: bad field %q", s, p)
		}
		if v[i], err = strconv.ParseUint(p, 16, 32); err != nil {
			return 0, 0, 0, fmt.Errorf("hidraw: HID_ID %q: %w", s, err)
		}
		if v[i] > 0xFFFF {
			return 0, 0, 0, fmt.Errorf("hidraw: HID_ID %q: field %q exceeds 16 bits", s, p)
		}
	}
	return uint16(v[0]), uint16(v[1]), uint16(v[2]), nil
}

// readLimited reads a small sysfs file, refusing one larger than max.
func readLimited(path string, max int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("hidraw: %w", err)
	}
	defer f.Close()
	buf := make([]byte, max+1)
	n := 0
	for n < len(buf) {
		m, err := f.Read(buf[n:])
		n += m
		if err != nil {
			break
		}
	}
	if n > max {
		return nil, fmt.Errorf("hidraw: %s is larger than %d bytes", path, max)
	}
	return buf[:n], nil
}

func nodeNumber(path string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(path), "hidraw"))
	if err != nil {
		return 1 << 30
	}
	return n
}
