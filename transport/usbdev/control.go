package usbdev

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// ErrStall is the answer to a control request the device does not support or that is invalid in
// its state: the transport reports a STALL handshake (usbredir status stall, USB/IP -EPIPE).
var ErrStall = errors.New("usbdev: request stalled")

// SetupSize is the length of a SETUP packet.
const SetupSize = 8

// Setup is the 8-byte SETUP packet of a control transfer (USB 2.0 §9.3).
type Setup struct {
	RequestType byte   // bmRequestType: direction, type, recipient
	Request     byte   // bRequest
	Value       uint16 // wValue
	Index       uint16 // wIndex
	Length      uint16 // wLength: bytes of the data stage
}

// ParseSetup reads a SETUP packet.
func ParseSetup(b []byte) (Setup, error) {
	if len(b) != SetupSize {
		return Setup{}, fmt.Errorf("usbdev: SETUP packet of %d bytes, want %d", len(b), SetupSize)
	}
	return Setup{
		RequestType: b[0], Request: b[1],
		Value:  binary.LittleEndian.Uint16(b[2:]),
		Index:  binary.LittleEndian.Uint16(b[4:]),
		Length: binary.LittleEndian.Uint16(b[6:]),
	}, nil
}

// Bytes encodes the SETUP packet.
func (s Setup) Bytes() [SetupSize]byte {
	var b [SetupSize]byte
	b[0], b[1] = s.RequestType, s.Request
	binary.LittleEndian.PutUint16(b[2:], s.Value)
	binary.LittleEndian.PutUint16(b[4:], s.Index)
	binary.LittleEndian.PutUint16(b[6:], s.Length)
	return b
}

// In reports whether the data stage goes from the device to the host.
func (s Setup) In() bool { return s.RequestType&0x80 != 0 }

func (s Setup) String() string {
	return fmt.Sprintf("bmRequestType=%#02x bRequest=%#02x wValue=%#04x wIndex=%#04x wLength=%d",
		s.RequestType, s.Request, s.Value, s.Index, s.Length)
}

// bmRequestType fields.
const (
	typeMask     = 0x60
	typeStandard = 0x00
	typeClass    = 0x20

	recipMask      = 0x1f
	recipDevice    = 0x00
	recipInterface = 0x01
	recipEndpoint  = 0x02
)

// Standard requests (USB 2.0 table 9-4).
const (
	ReqGetStatus        = 0x00
	ReqClearFeature     = 0x01
	ReqSetFeature       = 0x03
	ReqSetAddress       = 0x05
	ReqGetDescriptor    = 0x06
	ReqSetDescriptor    = 0x07
	ReqGetConfiguration = 0x08
	ReqSetConfiguration = 0x09
	ReqGetInterface     = 0x0a
	ReqSetInterface     = 0x0b
	ReqSynchFrame       = 0x0c
)

// HID class requests (HID 1.11 §7.2).
const (
	ReqGetReport   = 0x01
	ReqGetIdle     = 0x02
	ReqGetProtocol = 0x03
	ReqSetReport   = 0x09
	ReqSetIdle     = 0x0a
	ReqSetProtocol = 0x0b
)

// HID report types in the high byte of wValue of GET_REPORT/SET_REPORT.
const (
	ReportInput   = 1
	ReportOutput  = 2
	ReportFeature = 3
)

// Feature selectors (USB 2.0 table 9-6).
const (
	FeatureEndpointHalt = 0
)

// HID protocols for SET_PROTOCOL/GET_PROTOCOL.
const (
	protocolBoot   = 0
	protocolReport = 1
)

// State is one attachment of the device to a host: its configuration, the halt flags of its
// endpoints, the HID idle rate and protocol. Every method is safe for concurrent use.
type State struct {
	dev *Device
	// output receives an output report that the host sent with SET_REPORT on endpoint 0
	// instead of on the interrupt OUT endpoint (a HID host may do either).
	output func(report []byte)

	mu       sync.Mutex
	config   byte
	alt      byte
	haltIn   bool
	haltOut  bool
	idle     byte // SET_IDLE duration in 4 ms units for report ID 0; 0 = only on change
	protocol byte
}

// NewState is a fresh, unconfigured attachment of d (the Default state after a bus reset).
// output gets the 64-byte report of a SET_REPORT(Output); it may be nil.
func (d *Device) NewState(output func(report []byte)) *State {
	s := &State{dev: d, output: output}
	s.Reset()
	return s
}

// Device is the device this state belongs to.
func (s *State) Device() *Device { return s.dev }

// Reset is a USB bus reset: unconfigured, no halts, the default idle rate and the
// report protocol.
func (s *State) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config, s.alt = 0, 0
	s.haltIn, s.haltOut = false, false
	s.idle, s.protocol = 0, protocolReport
}

// Configured reports whether the host has selected the configuration (SET_CONFIGURATION 1): only
// then do the interrupt endpoints carry reports.
func (s *State) Configured() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config == ConfigurationValue
}

// Configuration is bConfigurationValue of the selected configuration, 0 when unconfigured.
func (s *State) Configuration() byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.config
}

// SetConfiguration selects configuration v (0 unconfigures). Selecting a configuration clears
// the halt flags and the alternate setting (USB 2.0 §9.4.5, §9.4.7). Any other value stalls.
func (s *State) SetConfiguration(v byte) error {
	if v != 0 && v != ConfigurationValue {
		return ErrStall
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.config, s.alt = v, 0
	s.haltIn, s.haltOut = false, false
	return nil
}

// AltSetting returns the alternate setting of interface iface: always 0, the only one. It stalls
// for an unknown interface or while unconfigured.
func (s *State) AltSetting(iface byte) (byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.config == 0 || iface != InterfaceNumber {
		return 0, ErrStall
	}
	return s.alt, nil
}

// SetAltSetting selects alternate setting alt of interface iface; only 0 exists. It clears the
// interface's endpoint halts (USB 2.0 §9.4.10).
func (s *State) SetAltSetting(iface, alt byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.config == 0 || iface != InterfaceNumber || alt != 0 {
		return ErrStall
	}
	s.haltIn, s.haltOut = false, false
	return nil
}

// Halted reports whether endpoint ep (EndpointIn or EndpointOut) is halted: its transfers stall
// until the host clears the halt.
func (s *State) Halted(ep byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ep {
	case EndpointIn:
		return s.haltIn
	case EndpointOut:
		return s.haltOut
	}
	return false
}

// halt returns the halt flag of an interrupt endpoint, nil for endpoint 0 (which never halts:
// a stalled control request clears at the next SETUP) and for an endpoint the device lacks.
func (s *State) halt(ep uint16) (*bool, bool) {
	switch ep {
	case EndpointIn:
		return &s.haltIn, true
	case EndpointOut:
		return &s.haltOut, true
	case 0x00, 0x80:
		return nil, true
	}
	return nil, false
}

// Control answers one control transfer on endpoint 0: setup is the SETUP packet and out the data
// stage of an OUT request (nil for IN). It returns the data stage of an IN request, at most
// setup.Length bytes, or ErrStall. It never panics, whatever the bytes.
func (s *State) Control(setup Setup, out []byte) ([]byte, error) {
	if setup.In() {
		in, err := s.controlIn(setup)
		if err != nil {
			return nil, err
		}
		if len(in) > int(setup.Length) {
			in = in[:setup.Length]
		}
		return in, nil
	}
	if len(out) != int(setup.Length) {
		return nil, ErrStall
	}
	return nil, s.controlOut(setup, out)
}

func (s *State) controlIn(r Setup) ([]byte, error) {
	switch r.RequestType & (typeMask | recipMask) {
	case typeStandard | recipDevice:
		switch r.Request {
		case ReqGetStatus:
			if r.Value != 0 || r.Index != 0 {
				return nil, ErrStall
			}
			return []byte{0, 0}, nil // bus powered, remote wakeup disabled
		case ReqGetDescriptor:
			return s.deviceDescriptor(r)
		case ReqGetConfiguration:
			return []byte{s.Configuration()}, nil
		}
	case typeStandard | recipInterface:
		switch r.Request {
		case ReqGetStatus:
			if r.Value != 0 || !s.Configured() || r.Index != InterfaceNumber {
				return nil, ErrStall
			}
			return []byte{0, 0}, nil
		case ReqGetInterface:
			alt, err := s.AltSetting(byte(r.Index))
			if err != nil || r.Index > 0xff {
				return nil, ErrStall
			}
			return []byte{alt}, nil
		case ReqGetDescriptor:
			return s.classDescriptor(r)
		}
	case typeStandard | recipEndpoint:
		if r.Request != ReqGetStatus || r.Value != 0 {
			return nil, ErrStall
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h, ok := s.halt(r.Index)
		if !ok || (h != nil && s.config == 0) {
			return nil, ErrStall
		}
		if h != nil && *h {
			return []byte{1, 0}, nil
		}
		return []byte{0, 0}, nil
	case typeClass | recipInterface:
		if !s.Configured() || r.Index != InterfaceNumber {
			return nil, ErrStall
		}
		switch r.Request {
		case ReqGetReport:
			// A FIDO key has one input report, without an ID; it has no pending data to give
			// through endpoint 0 (CTAPHID responses travel on the interrupt IN endpoint), so
			// the report reads as zeros, as on hardware keys.
			if r.Value != ReportInput<<8 {
				return nil, ErrStall
			}
			return make([]byte, ReportSize), nil
		case ReqGetIdle:
			if r.Value&0xff != 0 {
				return nil, ErrStall
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return []byte{s.idle}, nil
		case ReqGetProtocol:
			s.mu.Lock()
			defer s.mu.Unlock()
			return []byte{s.protocol}, nil
		}
	}
	return nil, ErrStall
}

func (s *State) deviceDescriptor(r Setup) ([]byte, error) {
	typ, idx := byte(r.Value>>8), byte(r.Value)
	switch typ {
	case DescDevice:
		if idx == 0 {
			return s.dev.device, nil
		}
	case DescConfiguration:
		if idx == 0 { // descriptor index 0: the first (and only) configuration
			return s.dev.config, nil
		}
	case DescString:
		if d, ok := s.dev.strings[idx]; ok {
			// Any language ID gets the English strings, as single-language devices answer.
			return d, nil
		}
	}
	// DEVICE_QUALIFIER and OTHER_SPEED_CONFIGURATION stall: a full-speed-only device
	// (USB 2.0 §9.6.2).
	return nil, ErrStall
}

// classDescriptor answers GET_DESCRIPTOR addressed to the interface: the HID and report
// descriptors (HID 1.11 §7.1.1).
func (s *State) classDescriptor(r Setup) ([]byte, error) {
	if r.Index != InterfaceNumber || r.Value&0xff != 0 {
		return nil, ErrStall
	}
	switch r.Value >> 8 {
	case DescHID:
		return s.dev.hid, nil
	case DescReport:
		return ReportDescriptor, nil
	}
	return nil, ErrStall
}

func (s *State) controlOut(r Setup, data []byte) error {
	switch r.RequestType & (typeMask | recipMask) {
	case typeStandard | recipDevice:
		switch r.Request {
		case ReqSetAddress:
			if r.Value > 127 || r.Index != 0 || r.Length != 0 {
				return ErrStall
			}
			return nil // the address belongs to the transport's bus; nothing to keep here
		case ReqSetConfiguration:
			if r.Value > 0xff || r.Index != 0 || r.Length != 0 {
				return ErrStall
			}
			return s.SetConfiguration(byte(r.Value))
		}
		// SET_FEATURE/CLEAR_FEATURE(DEVICE_REMOTE_WAKEUP) stall: the configuration does not
		// advertise remote wakeup. TEST_MODE is for high-speed devices. SET_DESCRIPTOR is
		// optional and unsupported.
	case typeStandard | recipInterface:
		if r.Request == ReqSetInterface && r.Index <= 0xff && r.Value <= 0xff && r.Length == 0 {
			return s.SetAltSetting(byte(r.Index), byte(r.Value))
		}
		// No interface features exist in USB 2.0.
	case typeStandard | recipEndpoint:
		if (r.Request != ReqClearFeature && r.Request != ReqSetFeature) || r.Value != FeatureEndpointHalt || r.Length != 0 {
			return ErrStall
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		h, ok := s.halt(r.Index)
		if !ok || (h != nil && s.config == 0) {
			return ErrStall
		}
		if h != nil {
			*h = r.Request == ReqSetFeature
		}
		return nil
	case typeClass | recipInterface:
		if !s.Configured() || r.Index != InterfaceNumber {
			return ErrStall
		}
		switch r.Request {
		case ReqSetIdle:
			if r.Value&0xff != 0 || r.Length != 0 { // report ID 0 is "all reports"; we have no IDs
				return ErrStall
			}
			s.mu.Lock()
			s.idle = byte(r.Value >> 8)
			s.mu.Unlock()
			return nil
		case ReqSetProtocol:
			if r.Value > protocolReport || r.Length != 0 {
				return ErrStall
			}
			s.mu.Lock()
			s.protocol = byte(r.Value)
			s.mu.Unlock()
			return nil
		case ReqSetReport:
			if r.Value != ReportOutput<<8 || len(data) != ReportSize {
				return ErrStall
			}
			if s.output != nil {
				s.output(data)
			}
			return nil
		}
	}
	return ErrStall
}
