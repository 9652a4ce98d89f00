// Package usbdev is the one description of the key as a USB device, shared by every device-side
// transport (usbredir, USB/IP, UHID, the USB gadget): its device, configuration, interface, HID,
// endpoint, string and report descriptors, and the handling of control requests on endpoint 0 as
// a function of the SETUP packet and its data, with no I/O.
//
// The device is what a hardware FIDO key is: full speed, one configuration, one HID interface
// (class 3, no boot subclass), an interrupt IN endpoint 0x81 and an interrupt OUT endpoint 0x01
// of 64 bytes, and the FIDO report descriptor (usage page 0xF1D0, usage 0x01, 64-byte input and
// output reports) of CTAP 2.1's USB HID transport ("HID report descriptor and device discovery").
package usbdev

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"

	"github.com/fidolab/fidolab/authenticator/persona"
)

// Descriptor types (USB 2.0 table 9-5, HID 1.11 §7.1).
const (
	DescDevice          = 0x01
	DescConfiguration   = 0x02
	DescString          = 0x03
	DescInterface       = 0x04
	DescEndpoint        = 0x05
	DescDeviceQualifier = 0x06
	DescHID             = 0x21
	DescReport          = 0x22
)

// The device's fixed shape.
const (
	// EndpointIn carries input reports (device to host).
	EndpointIn = 0x81
	// EndpointOut carries output reports (host to device).
	EndpointOut = 0x01
	// MaxPacketSize is the size of every endpoint's packets, endpoint 0 included, and of a report.
	MaxPacketSize = 64
	// ReportSize is the length of a FIDO HID input or output report.
	ReportSize = 64
	// ConfigurationValue is the bConfigurationValue of the one configuration.
	ConfigurationValue = 1
	// InterfaceNumber is the bInterfaceNumber of the one HID interface.
	InterfaceNumber = 0
	// ClassHID is the interface class of a HID device.
	ClassHID = 0x03
	// LangEnglishUS is the one language of the string descriptors.
	LangEnglishUS = 0x0409
	// DefaultInterval is bInterval, in milliseconds at full speed, of both interrupt endpoints.
	// 5 ms is what the reference usb-redir peer was seen enumerating with here.
	DefaultInterval = 5
	// bcdUSB 2.00: a full-speed-only USB 2.0 device (it stalls GET_DESCRIPTOR(DEVICE_QUALIFIER)).
	bcdUSB = 0x0200
	// bcdHID 1.11.
	bcdHID = 0x0111
	// maxPowerUnits is bMaxPower in 2 mA units: 100 mA, a bus-powered key.
	maxPowerUnits = 50
	// attrBusPowered is bmAttributes of the configuration: bit 7 set, not self powered, no
	// remote wakeup.
	attrBusPowered = 0x80
)

// String descriptor indexes; 0 is the language table.
const (
	StrManufacturer = 1
	StrProduct      = 2
	StrSerial       = 3
)

// Speed of the device on its bus.
type Speed int

// The one speed the key has: full speed (12 Mbit/s), as every FIDO HID key.
const SpeedFull Speed = 1

// ReportDescriptor is the FIDO HID report descriptor of CTAP 2.1's USB HID transport: usage page 0xF1D0
// (FIDO Alliance), usage 0x01 (CTAPHID), one application collection with a 64-byte input report
// (usage 0x20) and a 64-byte output report (usage 0x21), no report IDs.
var ReportDescriptor = []byte{
	0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance 0xF1D0)
	0x09, 0x01, // Usage (CTAPHID)
	0xa1, 0x01, // Collection (Application)
	0x09, 0x20, //   Usage (Input Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xff, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, ReportSize, //   Report Count (64)
	0x81, 0x02, //   Input (Data, Variable, Absolute)
	0x09, 0x21, //   Usage (Output Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xff, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, ReportSize, //   Report Count (64)
	0x91, 0x02, //   Output (Data, Variable, Absolute)
	0xc0, // End Collection
}

// Identity is what distinguishes one key on the bus: IDs, version and strings.
type Identity struct {
	VendorID, ProductID uint16
	// BCDDevice is bcdDevice, the device release number in binary-coded decimal (0x0100 = 1.00).
	BCDDevice    uint16
	Manufacturer string
	Product      string
	Serial       string
}

// FromPersona is the identity of a persona's `hid:` section. bcdDevice is deviceMajor.deviceMinor
// in BCD (each clamped to 0..99), as the CTAPHID INIT version numbers are the firmware's.
func FromPersona(h persona.HID) Identity {
	return Identity{
		VendorID: h.VendorID, ProductID: h.ProductID,
		BCDDevice:    uint16(bcd(h.DeviceMajor))<<8 | uint16(bcd(h.DeviceMinor)),
		Manufacturer: h.Manufacturer, Product: h.Product, Serial: h.Serial,
	}
}

func bcd(v byte) byte {
	v = min(v, 99)
	return v/10<<4 | v%10
}

// Device is the immutable description of the key as a USB device. Build it with New; a Device is
// safe for concurrent use, and each attachment to a host gets its own State.
type Device struct {
	id       Identity
	interval byte

	device  []byte
	config  []byte // the configuration descriptor with everything under it
	hid     []byte
	strings map[byte][]byte // index → string descriptor; 0 is the language table
}

// Option tunes New.
type Option func(*Device)

// WithInterval sets bInterval (1..255 ms) of both interrupt endpoints; 0 keeps DefaultInterval.
func WithInterval(ms byte) Option {
	return func(d *Device) {
		if ms > 0 {
			d.interval = ms
		}
	}
}

// New builds the descriptors of a key with identity id. An empty string is left out: its index in
// the device descriptor is 0 and asking for it stalls, as on a device without that string.
func New(id Identity, opts ...Option) *Device {
	d := &Device{id: id, interval: DefaultInterval, strings: map[byte][]byte{}}
	for _, o := range opts {
		o(d)
	}
	idx := func(i byte, s string) byte {
		if s == "" {
			return 0
		}
		d.strings[i] = stringDescriptor(s)
		return i
	}
	d.strings[0] = []byte{4, DescString, LangEnglishUS & 0xff, LangEnglishUS >> 8}
	iMfr := idx(StrManufacturer, id.Manufacturer)
	iProd := idx(StrProduct, id.Product)
	iSer := idx(StrSerial, id.Serial)

	d.device = []byte{
		18, DescDevice,
		bcdUSB & 0xff, bcdUSB >> 8,
		0, 0, 0, // class, subclass, protocol: defined by the interface
		MaxPacketSize,
		byte(id.VendorID), byte(id.VendorID >> 8),
		byte(id.ProductID), byte(id.ProductID >> 8),
		byte(id.BCDDevice), byte(id.BCDDevice >> 8),
		iMfr, iProd, iSer,
		1, // bNumConfigurations
	}
	d.hid = []byte{
		9, DescHID,
		bcdHID & 0xff, bcdHID >> 8,
		0, // bCountryCode: not localized
		1, // bNumDescriptors
		DescReport, byte(len(ReportDescriptor)), byte(len(ReportDescriptor) >> 8),
	}
	iface := []byte{
		9, DescInterface,
		InterfaceNumber, 0, // alternate setting 0
		2,                 // bNumEndpoints
		ClassHID, 0, 0, 0, // no boot subclass or protocol, no string
	}
	ep := func(addr byte) []byte {
		return []byte{7, DescEndpoint, addr, TypeInterrupt, MaxPacketSize, 0, d.interval}
	}
	body := concat(iface, d.hid, ep(EndpointIn), ep(EndpointOut))
	total := 9 + len(body)
	d.config = concat([]byte{
		9, DescConfiguration,
		byte(total), byte(total >> 8),
		1,                  // bNumInterfaces
		ConfigurationValue, // bConfigurationValue
		0,                  // iConfiguration
		attrBusPowered,
		maxPowerUnits,
	}, body)
	return d
}

// NewFromPersona is New(FromPersona(h), opts...).
func NewFromPersona(h persona.HID, opts ...Option) *Device { return New(FromPersona(h), opts...) }

func concat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// maxStringUnits is how many UTF-16 code units fit in a string descriptor (bLength is one byte).
const maxStringUnits = (255 - 2) / 2

func stringDescriptor(s string) []byte {
	u := utf16.Encode([]rune(s))
	if len(u) > maxStringUnits {
		u = u[:maxStringUnits]
		if utf16.IsSurrogate(rune(u[len(u)-1])) { // do not cut a surrogate pair in half
			u = u[:len(u)-1]
		}
	}
	b := make([]byte, 2+2*len(u))
	b[0], b[1] = byte(len(b)), DescString
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2+2*i:], c)
	}
	return b
}

// Endpoint transfer types (bmAttributes bits 1..0; the same numbers in usbredir's ep_info).
const (
	TypeControl   = 0
	TypeIso       = 1
	TypeBulk      = 2
	TypeInterrupt = 3
)

// Identity returns the device's identity.
func (d *Device) Identity() Identity { return d.id }

// Speed is the bus speed: always full speed.
func (d *Device) Speed() Speed { return SpeedFull }

// Interval is bInterval of the interrupt endpoints, in milliseconds.
func (d *Device) Interval() byte { return d.interval }

// DeviceDescriptor returns a copy of the 18-byte device descriptor.
func (d *Device) DeviceDescriptor() []byte { return clone(d.device) }

// ConfigDescriptor returns a copy of the whole configuration descriptor (configuration,
// interface, HID and both endpoint descriptors).
func (d *Device) ConfigDescriptor() []byte { return clone(d.config) }

// HIDDescriptor returns a copy of the 9-byte HID class descriptor.
func (d *Device) HIDDescriptor() []byte { return clone(d.hid) }

// StringDescriptor returns a copy of string descriptor i (0 is the language table) and whether the
// device has it.
func (d *Device) StringDescriptor(i byte) ([]byte, bool) {
	s, ok := d.strings[i]
	return clone(s), ok
}

// Interface is one interface's class triple, as usbredir's interface_info and USB/IP's device
// list carry it.
type Interface struct {
	Number, Class, SubClass, Protocol byte
}

// Interfaces lists the interfaces of the configuration.
func (d *Device) Interfaces() []Interface {
	return []Interface{{Number: InterfaceNumber, Class: ClassHID}}
}

// Endpoint is one endpoint of the configuration.
type Endpoint struct {
	Address       byte // with the direction bit 0x80 for IN
	Type          byte // TypeInterrupt, …
	MaxPacketSize uint16
	Interval      byte
	Interface     byte
}

// Endpoints lists endpoint 0 (both directions) and the interrupt endpoints.
func (d *Device) Endpoints() []Endpoint {
	return []Endpoint{
		{Address: 0x00, Type: TypeControl, MaxPacketSize: MaxPacketSize},
		{Address: 0x80, Type: TypeControl, MaxPacketSize: MaxPacketSize},
		{Address: EndpointOut, Type: TypeInterrupt, MaxPacketSize: MaxPacketSize, Interval: d.interval, Interface: InterfaceNumber},
		{Address: EndpointIn, Type: TypeInterrupt, MaxPacketSize: MaxPacketSize, Interval: d.interval, Interface: InterfaceNumber},
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// String describes the device for logs: "1209:f1d0 fidolab default key".
func (d *Device) String() string {
	return fmt.Sprintf("%04x:%04x %s", d.id.VendorID, d.id.ProductID, d.id.Product)
}

// Plug tells a transport when the key is unplugged and plugged back in, so it can show the host
// a real removal and arrival (emulator.Key implements it).
type Plug interface {
	Plugged() bool
	WatchPlug(fn func(plugged bool)) (stop func())
}
