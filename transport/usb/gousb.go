//go:build gousb

package usb

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/hiddesc"
	"github.com/google/gousb"
)

// Available is true: this build reaches keys through libusb.
const Available = true

// USB request constants (USB 2.0 §9.4, HID 1.11 §7.1–7.2).
const (
	reqTypeStdInterfaceIn = 0x81 // device-to-host, standard, interface
	reqTypeClassIfaceOut  = 0x21 // host-to-device, class, interface
	reqGetDescriptor      = 0x06
	reqSetReport          = 0x09
	descReport            = 0x22
	reportTypeOutput      = 0x02
	controlTimeout        = 2 * time.Second
)

// newContext starts libusb. gousb panics when libusb_init fails (no usbfs, in a container); that is
// turned into an error.
func newContext() (c *gousb.Context, err error) {
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("usb: libusb cannot start: %v", r)
		}
	}()
	return gousb.NewContext(), nil
}

// candidate is a HID interface whose endpoints fit CTAPHID.
type candidate struct {
	cfg, iface, alt int
	in, out         int // endpoint numbers; out is -1 when output reports go by SET_REPORT
}

// candidates lists the HID interfaces of the device's configuration cfg with a 64-byte interrupt IN
// endpoint, boot keyboards and mice (subclass 1) left out: FIDO keys declare no boot protocol.
func candidates(desc *gousb.DeviceDesc, cfgNum int) []candidate {
	cfg, ok := desc.Configs[cfgNum]
	if !ok {
		return nil
	}
	var out []candidate
	for _, intf := range cfg.Interfaces {
		for _, alt := range intf.AltSettings {
			if alt.Class != gousb.ClassHID || alt.SubClass == 1 {
				continue
			}
			c := candidate{cfg: cfgNum, iface: alt.Number, alt: alt.Alternate, in: -1, out: -1}
			for _, ep := range alt.Endpoints {
				if ep.TransferType != gousb.TransferTypeInterrupt || ep.MaxPacketSize != ctaphid.ReportSize {
					continue
				}
				if ep.Direction == gousb.EndpointDirectionIn && c.in < 0 {
					c.in = ep.Number
				} else if ep.Direction == gousb.EndpointDirectionOut && c.out < 0 {
					c.out = ep.Number
				}
			}
			if c.in >= 0 {
				out = append(out, c)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].iface < out[j].iface })
	return out
}

// List returns the plugged-in USB devices with a HID interface whose endpoints fit CTAPHID.
func List() ([]Device, error) {
	ctx, err := newContext()
	if err != nil {
		return nil, err
	}
	defer ctx.Close()
	var found []Device
	var descs []*gousb.DeviceDesc
	devs, err := ctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		if len(firstCandidates(d)) == 0 {
			return false
		}
		descs = append(descs, d)
		return true
	})
	defer func() {
		for _, d := range devs {
			d.Close()
		}
	}()
	opened := map[string]*gousb.Device{}
	for _, d := range devs {
		opened[fmt.Sprintf("%d/%d", d.Desc.Bus, d.Desc.Address)] = d
	}
	for _, desc := range descs {
		dev := Device{VendorID: uint16(desc.Vendor), ProductID: uint16(desc.Product), Bus: desc.Bus,
			Address: desc.Address, Interface: firstCandidates(desc)[0].iface}
		if d := opened[fmt.Sprintf("%d/%d", desc.Bus, desc.Address)]; d != nil {
			describeStrings(d, &dev)
		} else {
			dev.Problem = "cannot open the device to read its strings (permissions?)"
		}
		found = append(found, dev)
	}
	if err != nil && len(found) == 0 {
		return nil, fmt.Errorf("usb: listing devices: %w", err)
	}
	return found, nil
}

// firstCandidates are the candidates of the device's first configuration (the one the kernel
// normally selects).
func firstCandidates(d *gousb.DeviceDesc) []candidate {
	var nums []int
	for n := range d.Configs {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	if len(nums) == 0 {
		return nil
	}
	return candidates(d, nums[0])
}

func describeStrings(d *gousb.Device, dev *Device) {
	var problems []string
	var err error
	if dev.Manufacturer, err = d.Manufacturer(); err != nil {
		problems = append(problems, "manufacturer: "+err.Error())
	}
	if dev.Product, err = d.Product(); err != nil {
		problems = append(problems, "product: "+err.Error())
	}
	if dev.Serial, err = d.SerialNumber(); err != nil {
		problems = append(problems, "serial: "+err.Error())
	}
	dev.Problem = strings.Join(problems, "; ")
}

// Conn is an open USB FIDO key: its HID interface claimed (the kernel's driver detached from that
// interface only, and given back on Close).
type Conn struct {
	ctx   *gousb.Context
	dev   *gousb.Device
	cfg   *gousb.Config
	intf  *gousb.Interface
	in    *gousb.InEndpoint
	out   *gousb.OutEndpoint // nil: output reports go by SET_REPORT on the control pipe
	info  Device
	iface int

	wmu       sync.Mutex
	rmu       sync.Mutex
	rbuf      [ctaphid.ReportSize]byte
	closeOnce sync.Once
	closeErr  error
}

var _ ctaphid.ReportConn = (*Conn)(nil)

// Open opens the key that s selects. No match, or several without a serial to choose, is an error
// that lists what is plugged in.
func Open(s Spec) (*Conn, error) {
	ctx, err := newContext()
	if err != nil {
		return nil, err
	}
	devs, err := ctx.OpenDevices(func(d *gousb.DeviceDesc) bool {
		return uint16(d.Vendor) == s.Vendor && uint16(d.Product) == s.Product
	})
	var match []*gousb.Device
	var serials []string
	for _, d := range devs {
		sn, _ := d.SerialNumber()
		if s.Serial == "" || sn == s.Serial {
			match = append(match, d)
		} else {
			d.Close()
		}
		serials = append(serials, fmt.Sprintf("%q", sn))
	}
	fail := func(e error) (*Conn, error) {
		for _, d := range match {
			d.Close()
		}
		ctx.Close()
		return nil, e
	}
	switch {
	case len(match) == 0 && err != nil:
		return fail(fmt.Errorf("usb: opening %s: %w (permissions? see docs/transports.md)", s, err))
	case len(match) == 0 && len(devs) > 0:
		return fail(fmt.Errorf("usb: no device %s with serial %q (serials present: %s)", s, s.Serial, strings.Join(serials, ", ")))
	case len(match) == 0:
		return fail(fmt.Errorf("usb: no USB device %s is plugged in", s))
	case len(match) > 1:
		return fail(fmt.Errorf("usb: %d devices match %s; add the serial number (VID:PID:SERIAL) to choose: %s",
			len(match), s, strings.Join(serials, ", ")))
	}
	dev := match[0]
	c, err := claim(ctx, dev)
	if err != nil {
		dev.Close()
		ctx.Close()
		return nil, fmt.Errorf("usb: %s: %w", s, err)
	}
	return c, nil
}

// claim finds the FIDO interface of dev and claims it.
func claim(ctx *gousb.Context, dev *gousb.Device) (*Conn, error) {
	dev.ControlTimeout = controlTimeout
	cfgNum, err := dev.ActiveConfigNum()
	if err != nil {
		return nil, fmt.Errorf("active configuration: %w", err)
	}
	// Config before SetAutoDetach: with auto-detach on, gousb's Config detaches the kernel
	// drivers of every interface (a composite key's keyboard or smart card too) and never gives
	// them back. With libusb's auto-detach set afterwards, claiming detaches only the FIDO
	// interface, and releasing it re-attaches the kernel's driver.
	cfg, err := dev.Config(cfgNum)
	if err != nil {
		return nil, fmt.Errorf("configuration %d: %w", cfgNum, err)
	}
	if err := dev.SetAutoDetach(true); err != nil {
		cfg.Close()
		return nil, fmt.Errorf("kernel driver auto-detach: %w", err)
	}
	cands := candidates(dev.Desc, cfgNum)
	var why []string
	for _, cand := range cands {
		intf, err := cfg.Interface(cand.iface, cand.alt)
		if err != nil {
			why = append(why, fmt.Sprintf("interface %d: %v", cand.iface, err))
			continue
		}
		if _, err := fidoReport(dev, cand.iface); err != nil {
			intf.Close()
			why = append(why, fmt.Sprintf("interface %d: %v", cand.iface, err))
			continue
		}
		c := &Conn{ctx: ctx, dev: dev, cfg: cfg, intf: intf, iface: cand.iface}
		if c.in, err = intf.InEndpoint(cand.in); err == nil && cand.out >= 0 {
			c.out, err = intf.OutEndpoint(cand.out)
		}
		if err != nil {
			intf.Close()
			why = append(why, fmt.Sprintf("interface %d endpoints: %v", cand.iface, err))
			continue
		}
		c.info = Device{VendorID: uint16(dev.Desc.Vendor), ProductID: uint16(dev.Desc.Product),
			Bus: dev.Desc.Bus, Address: dev.Desc.Address, Interface: cand.iface}
		describeStrings(dev, &c.info)
		return c, nil
	}
	cfg.Close()
	if len(cands) == 0 {
		return nil, errors.New("no HID interface with a 64-byte interrupt IN endpoint: not a FIDO key")
	}
	return nil, fmt.Errorf("no FIDO interface: %s", strings.Join(why, "; "))
}

// fidoReport reads the interface's HID report descriptor (GET_DESCRIPTOR, type report) and checks
// it describes CTAPHID reports of 64 bytes without report IDs.
func fidoReport(dev *gousb.Device, iface int) (hiddesc.FIDOReport, error) {
	buf := make([]byte, hiddesc.MaxSize)
	n, err := dev.Control(reqTypeStdInterfaceIn, reqGetDescriptor, descReport<<8, uint16(iface), buf)
	if err != nil {
		return hiddesc.FIDOReport{}, fmt.Errorf("reading the report descriptor: %w", err)
	}
	desc, err := hiddesc.Parse(buf[:n])
	if err != nil {
		return hiddesc.FIDOReport{}, err
	}
	rep, err := desc.FIDOReports()
	if err != nil {
		return rep, err
	}
	if desc.ReportIDs || rep.InputSize != ctaphid.ReportSize || rep.OutputSize != ctaphid.ReportSize {
		return rep, fmt.Errorf("FIDO reports of %d/%d bytes with report ID %d; CTAPHID over USB here needs 64/64 without IDs",
			rep.InputSize, rep.OutputSize, rep.ID)
	}
	return rep, nil
}

// Device describes the open key.
func (c *Conn) Device() Device { return c.info }

// WriteReport sends one 64-byte output report on the interrupt OUT endpoint (or with SET_REPORT when
// the interface has none).
func (c *Conn) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.out == nil {
		_, err := c.dev.Control(reqTypeClassIfaceOut, reqSetReport, reportTypeOutput<<8, uint16(c.iface), r)
		return c.ioError(ctx, err)
	}
	n, err := c.out.WriteContext(ctx, r)
	if err == nil && n != len(r) {
		err = fmt.Errorf("usb: short write of %d bytes", n)
	}
	return c.ioError(ctx, err)
}

// ReadReport reads the next 64-byte input report from the interrupt IN endpoint.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		n, err := c.in.ReadContext(ctx, c.rbuf[:])
		if err != nil {
			return nil, c.ioError(ctx, err)
		}
		if n == 0 {
			continue // a zero-length packet carries no report
		}
		if n != ctaphid.ReportSize {
			return nil, fmt.Errorf("usb: the key sent a report of %d bytes, want %d", n, ctaphid.ReportSize)
		}
		return append([]byte(nil), c.rbuf[:]...), nil
	}
}

func (c *Conn) ioError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, gousb.ErrorNoDevice) || errors.Is(err, gousb.ErrorIO) || errors.Is(err, gousb.TransferNoDevice) {
		return fmt.Errorf("%w: %v", ErrGone, err)
	}
	return fmt.Errorf("usb: %w", err)
}

// Close releases the interface (the kernel's driver comes back), the device and libusb.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.intf.Close()
		errs := []error{c.cfg.Close(), c.dev.Close(), c.ctx.Close()}
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}
