package pcapng

import (
	"encoding/binary"
	"time"
)

// usbmon event and transfer types (Linux Documentation/usb/usbmon.rst).
const (
	eventSubmit   = 'S'
	eventComplete = 'C'
	xferInterrupt = 1
	xferControl   = 2
	noSetup       = '-'
	dataIn        = '<' // no data captured: it travels device→host, in the completion
	dataOut       = '>' // no data captured: it travelled host→device, in the submission
	einprogress   = -115
	headerSize    = 64
)

// Endpoints of the traced key: one interrupt IN and one interrupt OUT, as every FIDO HID key.
const (
	endpointIn  = 0x81
	endpointOut = 0x01
	endpointCtl = 0x80 // control, device→host
)

// urb is one usbmon event.
type urb struct {
	id         uint64
	event      byte
	xfer       byte
	endpoint   byte
	dev        byte
	bus        uint16
	setup      []byte // 8 bytes, or nil
	t          time.Time
	status     int32
	length     uint32 // the transfer's length
	data       []byte // what was captured
	noDataFlag byte   // dataIn or dataOut when data is empty
}

// marshal builds the 64-byte usbmon header (host byte order: little-endian here, as the
// section header says) followed by the data.
func (u *urb) marshal() []byte {
	b := make([]byte, headerSize, headerSize+len(u.data))
	le := binary.LittleEndian
	le.PutUint64(b[0:], u.id)
	b[8], b[9], b[10], b[11] = u.event, u.xfer, u.endpoint, u.dev
	le.PutUint16(b[12:], u.bus)
	b[14] = noSetup
	if u.setup != nil {
		b[14] = 0
		copy(b[40:48], u.setup)
	}
	b[15] = 0 // data present
	if len(u.data) == 0 {
		b[15] = u.noDataFlag
	}
	le.PutUint64(b[16:], uint64(u.t.Unix()))
	le.PutUint32(b[24:], uint32(u.t.Nanosecond()/1000))
	le.PutUint32(b[28:], uint32(u.status))
	le.PutUint32(b[32:], u.length)
	le.PutUint32(b[36:], uint32(len(u.data)))
	if u.xfer == xferInterrupt {
		le.PutUint32(b[48:], 5) // bInterval in ms, as the endpoint descriptors say
	}
	return append(b, u.data...)
}

// fidoReportDescriptor is the HID report descriptor of a FIDO key (CTAP 2.1 §11.2.8.2):
// usage page 0xF1D0, usage CTAPHID, one 64-byte input and one 64-byte output report.
var fidoReportDescriptor = []byte{
	0x06, 0xD0, 0xF1, // Usage Page (FIDO Alliance)
	0x09, 0x01, // Usage (CTAPHID)
	0xA1, 0x01, // Collection (Application)
	0x09, 0x20, //   Usage (Input Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xFF, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, 0x40, //   Report Count (64)
	0x81, 0x02, //   Input (Data, Variable, Absolute)
	0x09, 0x21, //   Usage (Output Report Data)
	0x15, 0x00, //   Logical Minimum (0)
	0x26, 0xFF, 0x00, //   Logical Maximum (255)
	0x75, 0x08, //   Report Size (8)
	0x95, 0x40, //   Report Count (64)
	0x91, 0x02, //   Output (Data, Variable, Absolute)
	0xC0, // End Collection
}

// deviceDescriptor is a USB 2.0 full-speed device of vendor vid, product pid.
func deviceDescriptor(vid, pid uint16) []byte {
	d := []byte{18, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 64, 0, 0, 0, 0, 0x00, 0x01, 1, 2, 3, 1}
	binary.LittleEndian.PutUint16(d[8:], vid)
	binary.LittleEndian.PutUint16(d[10:], pid)
	return d
}

// configurationDescriptor is one configuration with one HID interface and its two interrupt
// endpoints (64-byte packets, 5 ms).
func configurationDescriptor() []byte {
	rd := len(fidoReportDescriptor)
	d := []byte{
		9, 0x02, 41, 0, 1, 1, 0, 0x80, 50, // configuration: 41 bytes, 1 interface, bus powered, 100 mA
		9, 0x04, 0, 0, 2, 0x03, 0, 0, 0, // interface 0: 2 endpoints, class HID, no subclass, no protocol
		9, 0x21, 0x11, 0x01, 0, 1, 0x22, byte(rd), byte(rd >> 8), // HID 1.11, one report descriptor
		7, 0x05, endpointIn, 0x03, 64, 0, 5, // interrupt IN
		7, 0x05, endpointOut, 0x03, 64, 0, 5, // interrupt OUT
	}
	return d
}

// getDescriptor returns the setup packet of GET_DESCRIPTOR (standard, or the HID class's for the
// report descriptor, which is addressed to the interface).
func getDescriptor(typ byte, length int) []byte {
	reqType := byte(0x80)
	if typ == 0x22 {
		reqType = 0x81
	}
	return []byte{reqType, 0x06, 0x00, typ, 0x00, 0x00, byte(length), byte(length >> 8)}
}
