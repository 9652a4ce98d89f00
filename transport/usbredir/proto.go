package usbredir

import (
	"encoding/binary"
	"fmt"
)

// Type is a usbredir packet type (usbredir protocol 0.7, usbredirproto.h).
type Type uint32

// Control packet types.
const (
	TypeHello                    Type = 0
	TypeDeviceConnect            Type = 1
	TypeDeviceDisconnect         Type = 2
	TypeReset                    Type = 3
	TypeInterfaceInfo            Type = 4
	TypeEPInfo                   Type = 5
	TypeSetConfiguration         Type = 6
	TypeGetConfiguration         Type = 7
	TypeConfigurationStatus      Type = 8
	TypeSetAltSetting            Type = 9
	TypeGetAltSetting            Type = 10
	TypeAltSettingStatus         Type = 11
	TypeStartIsoStream           Type = 12
	TypeStopIsoStream            Type = 13
	TypeIsoStreamStatus          Type = 14
	TypeStartInterruptReceiving  Type = 15
	TypeStopInterruptReceiving   Type = 16
	TypeInterruptReceivingStatus Type = 17
	TypeAllocBulkStreams         Type = 18
	TypeFreeBulkStreams          Type = 19
	TypeBulkStreamsStatus        Type = 20
	TypeCancelDataPacket         Type = 21
	TypeFilterReject             Type = 22
	TypeFilterFilter             Type = 23
	TypeDeviceDisconnectAck      Type = 24
	TypeStartBulkReceiving       Type = 25
	TypeStopBulkReceiving        Type = 26
	TypeBulkReceivingStatus      Type = 27
)

// Data packet types.
const (
	TypeControlPacket      Type = 100
	TypeBulkPacket         Type = 101
	TypeIsoPacket          Type = 102
	TypeInterruptPacket    Type = 103
	TypeBufferedBulkPacket Type = 104
)

var typeNames = map[Type]string{
	TypeHello: "hello", TypeDeviceConnect: "device_connect", TypeDeviceDisconnect: "device_disconnect",
	TypeReset: "reset", TypeInterfaceInfo: "interface_info", TypeEPInfo: "ep_info",
	TypeSetConfiguration: "set_configuration", TypeGetConfiguration: "get_configuration",
	TypeConfigurationStatus: "configuration_status", TypeSetAltSetting: "set_alt_setting",
	TypeGetAltSetting: "get_alt_setting", TypeAltSettingStatus: "alt_setting_status",
	TypeStartIsoStream: "start_iso_stream", TypeStopIsoStream: "stop_iso_stream",
	TypeIsoStreamStatus: "iso_stream_status", TypeStartInterruptReceiving: "start_interrupt_receiving",
	TypeStopInterruptReceiving: "stop_interrupt_receiving", TypeInterruptReceivingStatus: "interrupt_receiving_status",
	TypeAllocBulkStreams: "alloc_bulk_streams", TypeFreeBulkStreams: "free_bulk_streams",
	TypeBulkStreamsStatus: "bulk_streams_status", TypeCancelDataPacket: "cancel_data_packet",
	TypeFilterReject: "filter_reject", TypeFilterFilter: "filter_filter",
	TypeDeviceDisconnectAck: "device_disconnect_ack", TypeStartBulkReceiving: "start_bulk_receiving",
	TypeStopBulkReceiving: "stop_bulk_receiving", TypeBulkReceivingStatus: "bulk_receiving_status",
	TypeControlPacket: "control_packet", TypeBulkPacket: "bulk_packet", TypeIsoPacket: "iso_packet",
	TypeInterruptPacket: "interrupt_packet", TypeBufferedBulkPacket: "buffered_bulk_packet",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// Cap is a capability bit announced in hello.
type Cap uint

// Capabilities (bit numbers in the first 32-bit word of hello's capability array).
const (
	CapBulkStreams               Cap = 0
	CapConnectDeviceVersion      Cap = 1
	CapFilter                    Cap = 2
	CapDeviceDisconnectAck       Cap = 3
	CapEPInfoMaxPacketSize       Cap = 4
	Cap64BitIDs                  Cap = 5
	Cap32BitBulkLength           Cap = 6
	CapBulkReceiving             Cap = 7
	maxKnownCap                      = CapBulkReceiving
	capWords                         = 1
	helloVersionSize                 = 64
	controlHeaderSize                = 10
	interruptHeaderSize              = 4
	isoHeaderSize                    = 4
	deviceConnectSize                = 8 // without device_version_bcd
	interfaceInfoSize                = 4 + 4*32
	epInfoBaseSize                   = 3 * 32
	bufferedBulkHeaderSize           = 10
	bulkHeaderBaseSize               = 8 // without length_high
	header32Size                     = 12
	header64Size                     = 16
	startBulkReceivingHeaderSize     = 10
)

// Caps is a set of capabilities.
type Caps uint32

// With returns c with cap added.
func (c Caps) With(cp Cap) Caps { return c | 1<<cp }

// Has reports whether cap is in c.
func (c Caps) Has(cp Cap) bool { return c&(1<<cp) != 0 }

// Status is the status field of replies.
type Status uint8

// Statuses.
const (
	StatusSuccess   Status = 0
	StatusCancelled Status = 1
	StatusInval     Status = 2
	StatusIOError   Status = 3
	StatusStall     Status = 4
	StatusTimeout   Status = 5
	StatusBabble    Status = 6
)

// Speeds of device_connect.
const (
	SpeedLow     = 0
	SpeedFull    = 1
	SpeedHigh    = 2
	SpeedSuper   = 3
	SpeedUnknown = 255
)

// Endpoint types of ep_info (the USB bmAttributes numbers) and the invalid marker.
const (
	EPTypeControl   = 0
	EPTypeIso       = 1
	EPTypeBulk      = 2
	EPTypeInterrupt = 3
	EPTypeInvalid   = 255
)

// EPIndex is an endpoint address's slot in ep_info's arrays: OUT 0..15, then IN 16..31.
func EPIndex(addr byte) int { return int(addr&0x80)>>3 | int(addr&0x0f) }

// Negotiated is what both sides announced: the capabilities that change packet layouts.
type Negotiated struct {
	// IDs64: headers carry 64-bit ids (after both hellos).
	IDs64 bool
	// DeviceVersion: device_connect carries device_version_bcd.
	DeviceVersion bool
	// EPMaxPacketSize: ep_info carries max_packet_size.
	EPMaxPacketSize bool
	// BulkStreams: ep_info carries max_streams.
	BulkStreams bool
	// BulkLength32: bulk_packet carries length_high.
	BulkLength32 bool
}

// Negotiate is the layout both sides use once they know each other's capabilities.
func Negotiate(ours, peer Caps) Negotiated {
	both := ours & peer
	return Negotiated{
		IDs64:           both.Has(Cap64BitIDs),
		DeviceVersion:   both.Has(CapConnectDeviceVersion),
		EPMaxPacketSize: both.Has(CapEPInfoMaxPacketSize),
		BulkStreams:     both.Has(CapBulkStreams),
		BulkLength32:    both.Has(Cap32BitBulkLength),
	}
}

// Hello is the first packet of each side.
type Hello struct {
	Version string
	Caps    Caps
}

// DeviceConnect announces the device.
type DeviceConnect struct {
	Speed, Class, SubClass, Protocol byte
	VendorID, ProductID, BCDDevice   uint16
}

// InterfaceInfo lists the device's interfaces.
type InterfaceInfo struct {
	Count                                uint32
	Interface, Class, SubClass, Protocol [32]byte
}

// EPInfo describes all 32 endpoint slots (see EPIndex).
type EPInfo struct {
	Type, Interval, Interface [32]byte
	MaxPacketSize             [32]uint16
	MaxStreams                [32]uint32
}

// ControlHeader is the header of control_packet.
type ControlHeader struct {
	Endpoint, Request, RequestType byte
	Status                         Status
	Value, Index, Length           uint16
}

// InterruptHeader is the header of interrupt_packet (and iso_packet, same layout).
type InterruptHeader struct {
	Endpoint byte
	Status   Status
	Length   uint16
}

// BulkHeader is the header of bulk_packet.
type BulkHeader struct {
	Endpoint byte
	Status   Status
	Length   uint32
	StreamID uint32
}

// Packet is one usbredir packet: its type, id, type-specific header and additional data.
type Packet struct {
	Type   Type
	ID     uint64
	Header []byte
	Data   []byte
}

func (p Packet) String() string {
	return fmt.Sprintf("%s id=%d header=%d data=%d", p.Type, p.ID, len(p.Header), len(p.Data))
}

// EncodeHello encodes hello's header.
func EncodeHello(h Hello) []byte {
	b := make([]byte, helloVersionSize+4*capWords)
	copy(b[:helloVersionSize-1], h.Version) // always NUL-terminated
	binary.LittleEndian.PutUint32(b[helloVersionSize:], uint32(h.Caps))
	return b
}

// DecodeHello reads hello's header; capability words past the first are ignored (no capability
// is defined there yet).
func DecodeHello(hdr []byte) (Hello, error) {
	if len(hdr) < helloVersionSize {
		return Hello{}, fmt.Errorf("hello of %d bytes, want at least %d", len(hdr), helloVersionSize)
	}
	v := hdr[:helloVersionSize]
	for i, c := range v {
		if c == 0 {
			v = v[:i]
			break
		}
	}
	h := Hello{Version: string(v)}
	if len(hdr) >= helloVersionSize+4 {
		h.Caps = Caps(binary.LittleEndian.Uint32(hdr[helloVersionSize:]))
	}
	return h, nil
}

// Encode encodes device_connect's header in the negotiated layout.
func (d DeviceConnect) Encode(n Negotiated) []byte {
	b := []byte{d.Speed, d.Class, d.SubClass, d.Protocol, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[4:], d.VendorID)
	binary.LittleEndian.PutUint16(b[6:], d.ProductID)
	if n.DeviceVersion {
		b = binary.LittleEndian.AppendUint16(b, d.BCDDevice)
	}
	return b
}

// DecodeDeviceConnect reads device_connect's header (its length checked by the Reader).
func DecodeDeviceConnect(hdr []byte) DeviceConnect {
	d := DeviceConnect{Speed: hdr[0], Class: hdr[1], SubClass: hdr[2], Protocol: hdr[3],
		VendorID: binary.LittleEndian.Uint16(hdr[4:]), ProductID: binary.LittleEndian.Uint16(hdr[6:])}
	if len(hdr) >= deviceConnectSize+2 {
		d.BCDDevice = binary.LittleEndian.Uint16(hdr[8:])
	}
	return d
}

// Encode encodes interface_info's header.
func (f InterfaceInfo) Encode() []byte {
	b := binary.LittleEndian.AppendUint32(nil, f.Count)
	for _, a := range [][32]byte{f.Interface, f.Class, f.SubClass, f.Protocol} {
		b = append(b, a[:]...)
	}
	return b
}

// DecodeInterfaceInfo reads interface_info's header (its length checked by the Reader).
func DecodeInterfaceInfo(hdr []byte) InterfaceInfo {
	f := InterfaceInfo{Count: binary.LittleEndian.Uint32(hdr)}
	off := 4
	for _, a := range []*[32]byte{&f.Interface, &f.Class, &f.SubClass, &f.Protocol} {
		copy(a[:], hdr[off:])
		off += 32
	}
	return f
}

// Encode encodes ep_info's header in the negotiated layout.
func (e EPInfo) Encode(n Negotiated) []byte {
	b := make([]byte, 0, epInfoBaseSize+64+128)
	b = append(b, e.Type[:]...)
	b = append(b, e.Interval[:]...)
	b = append(b, e.Interface[:]...)
	if n.EPMaxPacketSize {
		for _, m := range e.MaxPacketSize {
			b = binary.LittleEndian.AppendUint16(b, m)
		}
	}
	if n.BulkStreams {
		for _, m := range e.MaxStreams {
			b = binary.LittleEndian.AppendUint32(b, m)
		}
	}
	return b
}

// DecodeEPInfo reads ep_info's header in the negotiated layout (its length checked by the Reader).
func DecodeEPInfo(hdr []byte, n Negotiated) EPInfo {
	var e EPInfo
	copy(e.Type[:], hdr)
	copy(e.Interval[:], hdr[32:])
	copy(e.Interface[:], hdr[64:])
	off := epInfoBaseSize
	if n.EPMaxPacketSize {
		for i := range e.MaxPacketSize {
			e.MaxPacketSize[i] = binary.LittleEndian.Uint16(hdr[off+2*i:])
		}
		off += 64
	}
	if n.BulkStreams {
		for i := range e.MaxStreams {
			e.MaxStreams[i] = binary.LittleEndian.Uint32(hdr[off+4*i:])
		}
	}
	return e
}

// Encode encodes control_packet's header.
func (c ControlHeader) Encode() []byte {
	b := []byte{c.Endpoint, c.Request, c.RequestType, byte(c.Status), 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[4:], c.Value)
	binary.LittleEndian.PutUint16(b[6:], c.Index)
	binary.LittleEndian.PutUint16(b[8:], c.Length)
	return b
}

// DecodeControlHeader reads control_packet's header.
func DecodeControlHeader(hdr []byte) ControlHeader {
	return ControlHeader{Endpoint: hdr[0], Request: hdr[1], RequestType: hdr[2], Status: Status(hdr[3]),
		Value: binary.LittleEndian.Uint16(hdr[4:]), Index: binary.LittleEndian.Uint16(hdr[6:]),
		Length: binary.LittleEndian.Uint16(hdr[8:])}
}

// Encode encodes interrupt_packet's (or iso_packet's) header.
func (h InterruptHeader) Encode() []byte {
	b := []byte{h.Endpoint, byte(h.Status), 0, 0}
	binary.LittleEndian.PutUint16(b[2:], h.Length)
	return b
}

// DecodeInterruptHeader reads interrupt_packet's (or iso_packet's) header.
func DecodeInterruptHeader(hdr []byte) InterruptHeader {
	return InterruptHeader{Endpoint: hdr[0], Status: Status(hdr[1]), Length: binary.LittleEndian.Uint16(hdr[2:])}
}

// Encode encodes bulk_packet's header in the negotiated layout.
func (h BulkHeader) Encode(n Negotiated) []byte {
	b := []byte{h.Endpoint, byte(h.Status), 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], uint16(h.Length))
	binary.LittleEndian.PutUint32(b[4:], h.StreamID)
	if n.BulkLength32 {
		b = binary.LittleEndian.AppendUint16(b, uint16(h.Length>>16))
	}
	return b
}

// DecodeBulkHeader reads bulk_packet's header in the negotiated layout.
func DecodeBulkHeader(hdr []byte) BulkHeader {
	h := BulkHeader{Endpoint: hdr[0], Status: Status(hdr[1]), Length: uint32(binary.LittleEndian.Uint16(hdr[2:])),
		StreamID: binary.LittleEndian.Uint32(hdr[4:])}
	if len(hdr) >= bulkHeaderBaseSize+2 {
		h.Length |= uint32(binary.LittleEndian.Uint16(hdr[8:])) << 16
	}
	return h
}
