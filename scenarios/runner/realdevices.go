package runner

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/hidraw"
	"github.com/fidolab/fidolab/transport/usb"
)

// errNotPresent means the key is not plugged in (yet).
var errNotPresent = errors.New("the key is not plugged in")

// replugPoll is how often a replug is looked for.
const replugPoll = 100 * time.Millisecond

// hidrawDevice is a key on a hidraw node. The node's number can change when the key is replugged,
// so after the first open the key is found again by its identity (vendor, product, serial, port).
type hidrawDevice struct {
	path string // as given; "" means the only FIDO key plugged in
	enum hidraw.Enumerator

	clock clock.Clock

	mu sync.Mutex
	id *hidraw.Device
}

func newHidrawDevice(path string, clk clock.Clock) (*hidrawDevice, error) {
	if runtime.GOOS != "linux" {
		return nil, errors.New("hidraw keys exist on Linux only (use usb:VID:PID with a gousb build)")
	}
	if path != "" && !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("want hidraw:/dev/hidrawN, not %q", path)
	}
	return &hidrawDevice{path: path, clock: clock.Or(clk)}, nil
}

func (d *hidrawDevice) describe() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.id != nil {
		return fmt.Sprintf("%s %s %s", d.id.Path, d.id.ID(), d.id.Product)
	}
	if d.path == "" {
		return "the FIDO key"
	}
	return d.path
}

// locate finds the key: the node given (or the only FIDO key) the first time, then the node whose
// identity is the one first seen.
func (d *hidrawDevice) locate() (hidraw.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.id == nil {
		dev, err := d.first()
		if err != nil {
			return hidraw.Device{}, err
		}
		d.id = &dev
		return dev, nil
	}
	devs, err := d.enum.List(false)
	if err != nil {
		return hidraw.Device{}, err
	}
	// Where it was, then in the same port, then the only key of its model anywhere.
	var samePort, sameModel []hidraw.Device
	for _, o := range devs {
		switch {
		case d.id.SameKey(o) && o.Path == d.id.Path:
			return o, nil
		case d.id.SameKey(o):
			samePort = append(samePort, o)
		case d.id.SameModel(o):
			sameModel = append(sameModel, o)
		}
	}
	switch {
	case len(samePort) > 0:
		return samePort[0], nil
	case len(sameModel) == 1:
		return sameModel[0], nil
	case len(sameModel) > 1:
		return hidraw.Device{}, fmt.Errorf("%d keys like %s %s are plugged in and none where it was: unplug the others",
			len(sameModel), d.id.ID(), d.id.Product)
	}
	return hidraw.Device{}, errNotPresent
}

func (d *hidrawDevice) first() (hidraw.Device, error) {
	if d.path != "" {
		dev, err := d.enum.Describe(d.path)
		if err != nil {
			return dev, err
		}
		if !dev.FIDO {
			return dev, fmt.Errorf("%s (%s %s) is not a FIDO key (no usage page 0xF1D0 in its report descriptor)%s",
				dev.Path, dev.ID(), dev.Product, problem(dev.Problem))
		}
		return dev, nil
	}
	devs, err := d.enum.List(false)
	if err != nil {
		return hidraw.Device{}, err
	}
	switch len(devs) {
	case 0:
		return hidraw.Device{}, errors.New("no FIDO key on hidraw (fidolab devices lists what is there)")
	case 1:
		return devs[0], nil
	}
	var names []string
	for _, o := range devs {
		names = append(names, o.Path+" "+o.ID()+" "+o.Product)
	}
	return hidraw.Device{}, fmt.Errorf("%d FIDO keys are plugged in; name one: %s", len(devs), strings.Join(names, "; "))
}

func problem(p string) string {
	if p == "" {
		return ""
	}
	return " (" + p + ")"
}

func (d *hidrawDevice) dial(context.Context) (ctaphid.ReportConn, error) {
	dev, err := d.locate()
	if err != nil {
		return nil, err
	}
	return hidraw.Open(dev.Path)
}

// waitReplug returns when the key has gone and come back: its node vanished and reappeared, or a new
// HID device of the same identity replaced it (sysfs names each new one anew, so even a replug
// faster than the poll is seen).
func (d *hidrawDevice) waitReplug(ctx context.Context) error {
	before, err := d.locate()
	gone := errors.Is(err, errNotPresent)
	if err != nil && !gone {
		return err
	}
	for {
		if err := clock.Or(d.clock).Sleep(ctx, replugPoll); err != nil {
			return err
		}
		cur, err := d.locate()
		switch {
		case errors.Is(err, errNotPresent):
			gone = true
		case err != nil:
			return err
		case gone || cur.SysPath != before.SysPath:
			return nil
		}
	}
}

// usbDevice is a key reached through libusb, found by VID:PID[:SERIAL] when opened. A USB
// interface has one owner at a time, so every client of the case shares one claimed interface
// through a usb.Hub (hosts keep a client open while they open another).
type usbDevice struct {
	spec  usb.Spec
	hub   *usb.Hub
	clock clock.Clock
}

func newUSBDevice(s string, clk clock.Clock) (*usbDevice, error) {
	spec, err := usb.ParseSpec(s)
	if err != nil {
		return nil, err
	}
	if !usb.Available {
		return nil, usb.ErrNotBuilt
	}
	d := &usbDevice{spec: spec, clock: clock.Or(clk)}
	d.hub = usb.NewHub(func(context.Context) (ctaphid.ReportConn, error) { return usb.Open(spec) })
	return d, nil
}

func (d *usbDevice) describe() string { return "usb " + d.spec.String() }

func (d *usbDevice) dial(ctx context.Context) (ctaphid.ReportConn, error) { return d.hub.Dial(ctx) }

// waitReplug returns when the key has gone and come back: absent from the bus, or present at a new
// address (a replugged device gets a new one).
func (d *usbDevice) waitReplug(ctx context.Context) error {
	where := func() (string, error) {
		devs, err := usb.List()
		if err != nil {
			return "", err
		}
		for _, o := range devs {
			if o.VendorID == d.spec.Vendor && o.ProductID == d.spec.Product && (d.spec.Serial == "" || o.Serial == d.spec.Serial) {
				return fmt.Sprintf("%d/%d", o.Bus, o.Address), nil
			}
		}
		return "", nil
	}
	before, err := where()
	if err != nil {
		return err
	}
	gone := before == ""
	for {
		if err := d.clock.Sleep(ctx, replugPoll); err != nil {
			return err
		}
		cur, err := where()
		switch {
		case err != nil:
			return err
		case cur == "":
			gone = true
		case gone || cur != before:
			return nil
		}
	}
}
