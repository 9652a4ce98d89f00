package uhid

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// EventType is the type field of struct uhid_event (linux/uhid.h).
type EventType uint32

// The event types of the UHID ABI. The legacy ones (0, 7, 8) are never written and are read as
// unknown events.
const (
	EventDestroy        EventType = 1
	EventStart          EventType = 2
	EventStop           EventType = 3
	EventOpen           EventType = 4
	EventClose          EventType = 5
	EventOutput         EventType = 6
	EventGetReport      EventType = 9
	EventGetReportReply EventType = 10
	EventCreate2        EventType = 11
	EventInput2         EventType = 12
	EventSetReport      EventType = 13
	EventSetReportReply EventType = 14
)

var eventNames = map[EventType]string{
	EventDestroy: "DESTROY", EventStart: "START", EventStop: "STOP", EventOpen: "OPEN", EventClose: "CLOSE",
	EventOutput: "OUTPUT", EventGetReport: "GET_REPORT", EventGetReportReply: "GET_REPORT_REPLY",
	EventCreate2: "CREATE2", EventInput2: "INPUT2", EventSetReport: "SET_REPORT", EventSetReportReply: "SET_REPORT_REPLY",
}

func (t EventType) String() string {
	if n, ok := eventNames[t]; ok {
		return n
	}
	return fmt.Sprintf("UHID_EVENT_%d", uint32(t))
}

// ReportType is enum uhid_report_type.
type ReportType uint8

// Report types of OUTPUT, GET_REPORT and SET_REPORT events.
const (
	FeatureReport ReportType = 0
	OutputReport  ReportType = 1
	InputReport   ReportType = 2
)

// Bus types (linux/input.h). libfido2 on Linux lists only BUS_USB hidraw devices.
const (
	BusUSB     = 0x03
	BusVirtual = 0x06
)

// Sizes of the UHID ABI: every event is one struct uhid_event, 4 bytes of type and a packed union
// whose largest member is uhid_create2_req.
const (
	// DataMax is UHID_DATA_MAX, the most report bytes one event carries.
	DataMax = 4096
	// MaxDescriptor is HID_MAX_DESCRIPTOR_SIZE, the largest report descriptor CREATE2 takes.
	MaxDescriptor = 4096
	// EventSize is sizeof(struct uhid_event).
	EventSize = 4 + 128 + 64 + 64 + 2 + 2 + 4*4 + MaxDescriptor

	nameLen = 128
	physLen = 64
	uniqLen = 64
)

// errno values the kernel expects in GET_REPORT_REPLY and SET_REPORT_REPLY.
const (
	errnoOK  = 0
	errnoEIO = 5
)

var le = binary.LittleEndian

// Create2 is the UHID_CREATE2 request: a new HID device with this identity and report descriptor.
type Create2 struct {
	Name       string // HID_NAME, at most 127 bytes
	Phys       string // HID_PHYS, at most 63 bytes
	Uniq       string // HID_UNIQ (a USB device's serial number), at most 63 bytes
	Bus        uint16
	Vendor     uint32
	Product    uint32
	Version    uint32 // bcdDevice for a USB device
	Country    uint32
	Descriptor []byte
}

// Encode returns the CREATE2 event.
func (c Create2) Encode() ([]byte, error) {
	if len(c.Descriptor) == 0 || len(c.Descriptor) > MaxDescriptor {
		return nil, fmt.Errorf("uhid: report descriptor of %d bytes (want 1..%d)", len(c.Descriptor), MaxDescriptor)
	}
	b := make([]byte, EventSize)
	le.PutUint32(b, uint32(EventCreate2))
	for _, f := range []struct {
		name, v string
		off, n  int
	}{{"name", c.Name, 4, nameLen}, {"phys", c.Phys, 4 + nameLen, physLen}, {"uniq", c.Uniq, 4 + nameLen + physLen, uniqLen}} {
		if len(f.v) >= f.n {
			return nil, fmt.Errorf("uhid: %s %q is longer than %d bytes", f.name, f.v, f.n-1)
		}
		for i := 0; i < len(f.v); i++ {
			if f.v[i] == 0 {
				return nil, fmt.Errorf("uhid: %s %q contains a NUL byte", f.name, f.v)
			}
		}
		copy(b[f.off:], f.v) // NUL-terminated by the zeroed rest
	}
	o := 4 + nameLen + physLen + uniqLen
	le.PutUint16(b[o:], uint16(len(c.Descriptor)))
	le.PutUint16(b[o+2:], c.Bus)
	le.PutUint32(b[o+4:], c.Vendor)
	le.PutUint32(b[o+8:], c.Product)
	le.PutUint32(b[o+12:], c.Version)
	le.PutUint32(b[o+16:], c.Country)
	copy(b[o+20:], c.Descriptor)
	return b, nil
}

// encodeDestroy returns the DESTROY event.
func encodeDestroy() []byte {
	b := make([]byte, EventSize)
	le.PutUint32(b, uint32(EventDestroy))
	return b
}

// encodeInput2 returns an INPUT2 event carrying one input report (no report ID: the FIDO
// descriptor has none).
func encodeInput2(dst, report []byte) ([]byte, error) {
	if len(report) > DataMax {
		return nil, fmt.Errorf("uhid: input report of %d bytes", len(report))
	}
	dst = resize(dst, 6+len(report))
	le.PutUint32(dst, uint32(EventInput2))
	le.PutUint16(dst[4:], uint16(len(report)))
	copy(dst[6:], report)
	return dst, nil
}

// encodeGetReportReply answers GET_REPORT id with an errno (and no data when err is not 0).
func encodeGetReportReply(id uint32, errno uint16, data []byte) []byte {
	b := make([]byte, 12+len(data))
	le.PutUint32(b, uint32(EventGetReportReply))
	le.PutUint32(b[4:], id)
	le.PutUint16(b[8:], errno)
	le.PutUint16(b[10:], uint16(len(data)))
	copy(b[12:], data)
	return b
}

// encodeSetReportReply answers SET_REPORT id with an errno.
func encodeSetReportReply(id uint32, errno uint16) []byte {
	b := make([]byte, 10)
	le.PutUint32(b, uint32(EventSetReportReply))
	le.PutUint32(b[4:], id)
	le.PutUint16(b[8:], errno)
	return b
}

func resize(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

// Event is one event read from /dev/uhid.
type Event struct {
	Type EventType
	// DevFlags of START (UHID_DEV_NUMBERED_*_REPORTS).
	DevFlags uint64
	// Data of OUTPUT and SET_REPORT; it aliases the buffer given to ParseEvent.
	Data []byte
	// ReportType of OUTPUT, GET_REPORT and SET_REPORT.
	ReportType ReportType
	// ID of GET_REPORT and SET_REPORT, to be echoed in the reply.
	ID uint32
	// ReportNumber of GET_REPORT and SET_REPORT.
	ReportNumber uint8
}

// ErrShortEvent is returned for an event shorter than its type needs.
var ErrShortEvent = errors.New("uhid: short event")

// ParseEvent decodes an event the kernel wrote. Unknown types are returned with only Type set, so
// a newer kernel's events can be skipped; a known type whose fields do not fit is an error.
func ParseEvent(b []byte) (Event, error) {
	if len(b) < 4 {
		return Event{}, fmt.Errorf("%w: %d bytes", ErrShortEvent, len(b))
	}
	ev := Event{Type: EventType(le.Uint32(b))}
	need := func(n int) error {
		if len(b) < n {
			return fmt.Errorf("%w: %v needs %d bytes, got %d", ErrShortEvent, ev.Type, n, len(b))
		}
		return nil
	}
	switch ev.Type {
	case EventStart:
		if err := need(12); err != nil {
			return Event{}, err
		}
		ev.DevFlags = le.Uint64(b[4:])
	case EventOutput:
		// struct uhid_output_req { __u8 data[4096]; __u16 size; __u8 rtype; }
		if err := need(4 + DataMax + 3); err != nil {
			return Event{}, err
		}
		size := int(le.Uint16(b[4+DataMax:]))
		if size > DataMax {
			return Event{}, fmt.Errorf("uhid: OUTPUT size %d > %d", size, DataMax)
		}
		ev.Data = b[4 : 4+size]
		ev.ReportType = ReportType(b[4+DataMax+2])
	case EventGetReport:
		if err := need(10); err != nil {
			return Event{}, err
		}
		ev.ID, ev.ReportNumber, ev.ReportType = le.Uint32(b[4:]), b[8], ReportType(b[9])
	case EventSetReport:
		if err := need(12); err != nil {
			return Event{}, err
		}
		ev.ID, ev.ReportNumber, ev.ReportType = le.Uint32(b[4:]), b[8], ReportType(b[9])
		size := int(le.Uint16(b[10:]))
		if size > DataMax {
			return Event{}, fmt.Errorf("uhid: SET_REPORT size %d > %d", size, DataMax)
		}
		if err := need(12 + size); err != nil {
			return Event{}, err
		}
		ev.Data = b[12 : 12+size]
	}
	return ev, nil
}

// ctapReport extracts the CTAPHID report from an output report as hidraw hands it over: the FIDO
// descriptor has no report IDs, so every write carries a leading report number 0 and the report
// (65 bytes for a 64-byte report). Anything else is not a FIDO output report.
func ctapReport(data []byte, size int) ([]byte, bool) {
	if len(data) != size+1 || data[0] != 0 {
		return nil, false
	}
	return data[1:], true
}
