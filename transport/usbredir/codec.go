package usbredir

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Side is who sent a packet: the usb-guest (QEMU) or the usb-host (the side that has the device,
// fidolab).
type Side int

// Sides.
const (
	FromGuest Side = iota
	FromHost
)

// MaxBodyLength bounds a packet's length field. usbredir allows up to 4 GiB; the key has no bulk
// endpoint, and its largest legitimate packet is a 65535-byte control transfer, so anything over
// 1 MiB is a broken or hostile peer and ends the connection before any memory is taken for it.
const MaxBodyLength = 1 << 20

// ErrProtocol is wrapped by every error about malformed input.
var ErrProtocol = errors.New("usbredir: protocol error")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// fixedHeaderSize is the exact body length of packet types that carry no additional data, or the
// header length of those that do; -1 for variable layouts handled in split.
func fixedHeaderSize(t Type, n Negotiated) int {
	switch t {
	case TypeDeviceDisconnect, TypeReset, TypeGetConfiguration, TypeCancelDataPacket, TypeFilterReject,
		TypeDeviceDisconnectAck:
		return 0
	case TypeSetConfiguration, TypeGetAltSetting, TypeStopIsoStream, TypeStartInterruptReceiving,
		TypeStopInterruptReceiving:
		return 1
	case TypeConfigurationStatus, TypeSetAltSetting, TypeIsoStreamStatus, TypeInterruptReceivingStatus:
		return 2
	case TypeAltSettingStatus, TypeStartIsoStream:
		return 3
	case TypeFreeBulkStreams:
		return 4
	case TypeStopBulkReceiving:
		return 5
	case TypeBulkReceivingStatus:
		return 6
	case TypeAllocBulkStreams:
		return 8
	case TypeBulkStreamsStatus:
		return 9
	case TypeStartBulkReceiving:
		return startBulkReceivingHeaderSize
	case TypeDeviceConnect:
		if n.DeviceVersion {
			return deviceConnectSize + 2
		}
		return deviceConnectSize
	case TypeInterfaceInfo:
		return interfaceInfoSize
	case TypeEPInfo:
		size := epInfoBaseSize
		if n.EPMaxPacketSize {
			size += 64
		}
		if n.BulkStreams {
			size += 128
		}
		return size
	}
	return -1
}

// dataHeaderSize is the header length of a data packet type, or -1.
func dataHeaderSize(t Type, n Negotiated) int {
	switch t {
	case TypeControlPacket:
		return controlHeaderSize
	case TypeInterruptPacket:
		return interruptHeaderSize
	case TypeIsoPacket:
		return isoHeaderSize
	case TypeBufferedBulkPacket:
		return bufferedBulkHeaderSize
	case TypeBulkPacket:
		if n.BulkLength32 {
			return bulkHeaderBaseSize + 2
		}
		return bulkHeaderBaseSize
	}
	return -1
}

// Known reports whether t is a packet type of protocol 0.7.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// Reader reads packets sent by one side of a connection and checks their layout: lengths that
// disagree with the type, with the negotiated capabilities or with the direction of the data are
// errors wrapping ErrProtocol. A packet of an unknown type is returned whole in Data, for the
// caller to log and skip as usbredirparser does.
type Reader struct {
	r    io.Reader
	from Side
	n    Negotiated
	hdr  [header64Size]byte
	buf  []byte
}

// NewReader reads packets that from sent. Until SetNegotiated, headers have 32-bit ids (the
// hellos always do).
func NewReader(r io.Reader, from Side) *Reader { return &Reader{r: r, from: from} }

// SetNegotiated switches to the layouts both sides agreed on, once both hellos are known.
func (r *Reader) SetNegotiated(n Negotiated) { r.n = n }

// Negotiated is the layout in use.
func (r *Reader) Negotiated() Negotiated { return r.n }

// Next reads one packet. Its Header and Data alias the Reader's buffer until the next call.
func (r *Reader) Next() (Packet, error) {
	hsize := header32Size
	if r.n.IDs64 {
		hsize = header64Size
	}
	if _, err := io.ReadFull(r.r, r.hdr[:hsize]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Packet{}, protoErr("connection closed inside a packet header")
		}
		return Packet{}, err
	}
	p := Packet{Type: Type(binary.LittleEndian.Uint32(r.hdr[0:])), ID: uint64(binary.LittleEndian.Uint32(r.hdr[8:]))}
	length := binary.LittleEndian.Uint32(r.hdr[4:])
	if r.n.IDs64 {
		p.ID = binary.LittleEndian.Uint64(r.hdr[8:])
	}
	if want := fixedHeaderSize(p.Type, r.n); want >= 0 && int64(length) != int64(want) {
		return Packet{}, protoErr("%s with length %d, want %d", p.Type, length, want)
	}
	if length > MaxBodyLength {
		return Packet{}, protoErr("%s with length %d over the %d-byte limit", p.Type, length, MaxBodyLength)
	}
	if cap(r.buf) < int(length) {
		r.buf = make([]byte, length, max(length, 256))
	}
	body := r.buf[:length]
	if _, err := io.ReadFull(r.r, body); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return Packet{}, protoErr("connection closed inside a %s of %d bytes", p.Type, length)
		}
		return Packet{}, err
	}
	if err := r.split(&p, body); err != nil {
		return Packet{}, err
	}
	return p, nil
}

// split divides body into the type-specific header and the additional data and checks them.
func (r *Reader) split(p *Packet, body []byte) error {
	if fixedHeaderSize(p.Type, r.n) >= 0 {
		p.Header = body
		return nil
	}
	switch p.Type {
	case TypeHello:
		if len(body) < helloVersionSize || (len(body)-helloVersionSize)%4 != 0 || len(body) > helloVersionSize+4*32 {
			return protoErr("hello with length %d, want 64 + 4 × capability words", len(body))
		}
		p.Header = body
		return nil
	case TypeFilterFilter:
		if len(body) == 0 || body[len(body)-1] != 0 {
			return protoErr("filter_filter string is not NUL-terminated")
		}
		p.Data = body
		return nil
	}
	hs := dataHeaderSize(p.Type, r.n)
	if hs < 0 { // unknown type: the caller skips it
		p.Data = body
		return nil
	}
	if len(body) < hs {
		return protoErr("%s with length %d, shorter than its %d-byte header", p.Type, len(body), hs)
	}
	p.Header, p.Data = body[:hs], body[hs:]
	var (
		in     bool
		length uint32
	)
	switch p.Type {
	case TypeControlPacket:
		h := DecodeControlHeader(p.Header)
		in, length = h.RequestType&0x80 != 0, uint32(h.Length)
		if h.Endpoint&0x7f != 0 {
			return protoErr("control_packet on endpoint %#02x, want endpoint 0", h.Endpoint)
		}
	case TypeInterruptPacket, TypeIsoPacket:
		h := DecodeInterruptHeader(p.Header)
		in, length = h.Endpoint&0x80 != 0, uint32(h.Length)
	case TypeBulkPacket:
		h := DecodeBulkHeader(p.Header)
		in, length = h.Endpoint&0x80 != 0, h.Length
	case TypeBufferedBulkPacket:
		in, length = true, binary.LittleEndian.Uint32(p.Header[4:])
	}
	// Data flows one way: from the guest on OUT transfers, from the host on IN transfers; the
	// other side's packet has none.
	carries := in == (r.from == FromHost)
	switch {
	case carries && uint32(len(p.Data)) != length:
		return protoErr("%s with length %d and %d bytes of data", p.Type, length, len(p.Data))
	case !carries && len(p.Data) != 0:
		return protoErr("%s carries %d bytes of data in the wrong direction", p.Type, len(p.Data))
	}
	return nil
}

// AppendPacket appends p, with a header in the negotiated id size, to b.
func AppendPacket(b []byte, n Negotiated, p Packet) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Type))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Header)+len(p.Data)))
	if n.IDs64 {
		b = binary.LittleEndian.AppendUint64(b, p.ID)
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(p.ID))
	}
	b = append(b, p.Header...)
	return append(b, p.Data...)
}
