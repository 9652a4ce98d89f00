// Package usb reaches a real FIDO key as a USB device through libusb (github.com/google/gousb):
// it finds the key's FIDO HID interface (class 3, report descriptor usage page 0xF1D0), detaches
// the kernel's HID driver from that one interface, claims it, and carries 64-byte CTAPHID reports
// over its interrupt endpoints as a ctaphid.ReportConn.
//
// libusb needs cgo and the libusb-1.0 development package, so the implementation is behind the
// build tag "gousb": `go build -tags gousb ./cmd/fidolab`. Without the tag the package still
// parses key specs, and Open and List return ErrNotBuilt. On Linux the pure-Go hidraw transport
// reaches the same keys without either.
package usb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotBuilt is returned by Open and List in a build without the gousb tag.
var ErrNotBuilt = errors.New("usb: this fidolab was built without libusb; rebuild it with " +
	"`go build -tags gousb ./cmd/fidolab` (needs cgo and libusb-1.0-0-dev), or use --key hidraw:/dev/hidrawN on Linux")

// ErrGone means the key went away (unplugged) while it was open.
var ErrGone = errors.New("usb: the key is gone (unplugged?)")

// Spec selects a key by vendor and product ID, and by serial number when several are plugged in.
type Spec struct {
	Vendor, Product uint16
	Serial          string // "" matches any
}

// ParseSpec parses "VID:PID" or "VID:PID:SERIAL", IDs in hex ("1050:0407", "0x1050:0x0407:12345").
func ParseSpec(s string) (Spec, error) {
	parts := strings.SplitN(s, ":", 3)
	if len(parts) < 2 {
		return Spec{}, fmt.Errorf("usb: key %q: want VID:PID[:SERIAL] in hex, e.g. 1050:0407", s)
	}
	var ids [2]uint16
	for i, p := range parts[:2] {
		p = strings.TrimPrefix(strings.ToLower(p), "0x")
		if p == "" || len(p) > 4 {
			return Spec{}, fmt.Errorf("usb: key %q: %q is not a 16-bit hex ID", s, parts[i])
		}
		v, err := strconv.ParseUint(p, 16, 16)
		if err != nil {
			return Spec{}, fmt.Errorf("usb: key %q: %q is not a 16-bit hex ID", s, parts[i])
		}
		ids[i] = uint16(v)
	}
	sp := Spec{Vendor: ids[0], Product: ids[1]}
	if len(parts) == 3 {
		if parts[2] == "" {
			return Spec{}, fmt.Errorf("usb: key %q: empty serial number", s)
		}
		sp.Serial = parts[2]
	}
	return sp, nil
}

func (s Spec) String() string {
	out := fmt.Sprintf("%04x:%04x", s.Vendor, s.Product)
	if s.Serial != "" {
		out += ":" + s.Serial
	}
	return out
}

// Device is a USB device with a HID interface that looks like a FIDO key's.
type Device struct {
	VendorID     uint16 `json:"vendorId"`
	ProductID    uint16 `json:"productId"`
	Manufacturer string `json:"manufacturer,omitempty"`
	Product      string `json:"product,omitempty"`
	Serial       string `json:"serial,omitempty"`
	Bus          int    `json:"bus"`
	Address      int    `json:"address"`
	// Interface is the HID interface number whose endpoints fit CTAPHID (64-byte interrupt IN and
	// OUT); Open confirms it from the report descriptor.
	Interface int `json:"interface"`
	// Problem says what could not be read (string descriptors need access to the device).
	Problem string `json:"problem,omitempty"`
}

// Spec is the spec that selects d.
func (d Device) Spec() Spec { return Spec{Vendor: d.VendorID, Product: d.ProductID, Serial: d.Serial} }
