package usbip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Version is the USB/IP protocol version this server speaks (v1.1.1), in every OP header.
const Version = 0x0111

// Operation codes (first phase of a connection).
const (
	OpReqDevlist = 0x8005
	OpRepDevlist = 0x0005
	OpReqImport  = 0x8003
	OpRepImport  = 0x0003
)

// Operation reply statuses (usbip-utils' ST_*).
const (
	StOK      = 0
	StNA      = 1 // device not available
	StDevBusy = 2 // device already imported
	StDevErr  = 3
	StNoDev   = 4 // no such bus ID
	StError   = 5
)

// URB commands (second phase, after a successful import).
const (
	CmdSubmit = 1
	CmdUnlink = 2
	RetSubmit = 3
	RetUnlink = 4
)

// Directions of CMD_SUBMIT.
const (
	DirOut = 0
	DirIn  = 1
)

// Linux errno values carried (negated) in RET_SUBMIT and RET_UNLINK statuses.
const (
	errnoEPIPE      = 32
	errnoEOVERFLOW  = 75
	errnoECONNRESET = 104
	errnoESHUTDOWN  = 108
)

// Statuses of RET_SUBMIT / RET_UNLINK.
const (
	StatusOK              int32 = 0
	StatusStall           int32 = -errnoEPIPE      // the endpoint stalled
	StatusOverflow        int32 = -errnoEOVERFLOW  // more data than the buffer (babble)
	StatusUnlinked        int32 = -errnoECONNRESET // RET_UNLINK: the URB was unlinked before it completed
	StatusShutdown        int32 = -errnoESHUTDOWN  // the device went away
	noISOPackets                = 0xffffffff
	opHeaderSize                = 8
	urbHeaderSize               = 48
	deviceSize                  = 312
	interfaceSize               = 4
	busIDSize                   = 32
	pathSize                    = 256
	maxTransferLength           = 1 << 20
	setupOffset                 = 0x28
	unlinkSeqnumOffset          = 0x14
	submitFlagsOffset           = 0x14
	submitLengthOffset          = 0x18
	submitStartOffset           = 0x1c
	submitPacketsOffset         = 0x20
	submitIntervalOffset        = 0x24
	retStatusOffset             = 0x14
	retActualOffset             = 0x18
	retPacketsOffset            = 0x20
	retErrorCountOffset         = 0x24
	usbSpeedFull                = 2 // Linux enum usb_device_speed: USB_SPEED_FULL
	defaultBusNum               = 1
	defaultDevNum               = 2
	defaultBusID                = "1-1"
	defaultPathPrefix           = "/sys/devices/platform/fidolab.0/usb1/"
	maxBusIDLength              = busIDSize - 1
	isoPacketDescSize           = 16
	cmdBasicDevidOffset         = 8
	cmdBasicDirOffset           = 12
	cmdBasicEPOffset            = 16
	cmdBasicSeqnumOffset        = 4
	cmdBasicCommandOffset       = 0
)

// ErrProtocol is wrapped by every error about malformed input.
var ErrProtocol = errors.New("usbip: protocol error")

func protoErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, a...))
}

// OpHeader is the common header of OP_REQ_* and OP_REP_*.
type OpHeader struct {
	Version uint16
	Code    uint16
	Status  uint32
}

// Encode encodes the header.
func (h OpHeader) Encode() []byte {
	b := make([]byte, opHeaderSize)
	binary.BigEndian.PutUint16(b, h.Version)
	binary.BigEndian.PutUint16(b[2:], h.Code)
	binary.BigEndian.PutUint32(b[4:], h.Status)
	return b
}

// DecodeOpHeader reads an OP header.
func DecodeOpHeader(b []byte) OpHeader {
	return OpHeader{Version: binary.BigEndian.Uint16(b), Code: binary.BigEndian.Uint16(b[2:]), Status: binary.BigEndian.Uint32(b[4:])}
}

// Interface is one interface's class triple in a device record.
type Interface struct{ Class, SubClass, Protocol byte }

// Device is the usbip_usb_device record of OP_REP_DEVLIST and OP_REP_IMPORT.
type Device struct {
	Path, BusID                    string
	BusNum, DevNum, Speed          uint32
	VendorID, ProductID, BCDDevice uint16
	Class, SubClass, Protocol      byte
	ConfigurationValue, NumConfigs byte
	NumInterfaces                  byte
	Interfaces                     []Interface // in OP_REP_DEVLIST only
}

// DevID is how URB commands name the device: busnum << 16 | devnum.
func (d Device) DevID() uint32 { return d.BusNum<<16 | d.DevNum }

func putString(b []byte, s string) { copy(b[:len(b)-1], s) } // always NUL-terminated

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// AppendDevice appends the 312-byte record, then (withInterfaces) one 4-byte record per interface.
func AppendDevice(b []byte, d Device, withInterfaces bool) []byte {
	rec := make([]byte, deviceSize)
	putString(rec[:pathSize], d.Path)
	putString(rec[pathSize:pathSize+busIDSize], d.BusID)
	o := pathSize + busIDSize
	binary.BigEndian.PutUint32(rec[o:], d.BusNum)
	binary.BigEndian.PutUint32(rec[o+4:], d.DevNum)
	binary.BigEndian.PutUint32(rec[o+8:], d.Speed)
	binary.BigEndian.PutUint16(rec[o+12:], d.VendorID)
	binary.BigEndian.PutUint16(rec[o+14:], d.ProductID)
	binary.BigEndian.PutUint16(rec[o+16:], d.BCDDevice)
	copy(rec[o+18:], []byte{d.Class, d.SubClass, d.Protocol, d.ConfigurationValue, d.NumConfigs, d.NumInterfaces})
	b = append(b, rec...)
	if withInterfaces {
		for _, f := range d.Interfaces {
			b = append(b, f.Class, f.SubClass, f.Protocol, 0)
		}
	}
	return b
}

// DecodeDevice reads a 312-byte device record.
func DecodeDevice(rec []byte) Device {
	o := pathSize + busIDSize
	return Device{
		Path: cString(rec[:pathSize]), BusID: cString(rec[pathSize:o]),
		BusNum: binary.BigEndian.Uint32(rec[o:]), DevNum: binary.BigEndian.Uint32(rec[o+4:]), Speed: binary.BigEndian.Uint32(rec[o+8:]),
		VendorID: binary.BigEndian.Uint16(rec[o+12:]), ProductID: binary.BigEndian.Uint16(rec[o+14:]), BCDDevice: binary.BigEndian.Uint16(rec[o+16:]),
		Class: rec[o+18], SubClass: rec[o+19], Protocol: rec[o+20],
		ConfigurationValue: rec[o+21], NumConfigs: rec[o+22], NumInterfaces: rec[o+23],
	}
}

// Submit is a USBIP_CMD_SUBMIT.
type Submit struct {
	Seqnum, DevID, Direction, EP uint32
	TransferFlags                uint32
	Length                       uint32 // transfer_buffer_length
	StartFrame                   uint32
	NumberOfPackets              uint32 // 0xffffffff (or 0) for a non-ISO transfer
	Interval                     uint32
	Setup                        [8]byte
	Data                         []byte // the OUT data
}

// Unlink is a USBIP_CMD_UNLINK.
type Unlink struct {
	Seqnum, DevID uint32
	UnlinkSeqnum  uint32
}

// RetSubmitMsg is a USBIP_RET_SUBMIT.
type RetSubmitMsg struct {
	Seqnum          uint32
	Status          int32
	ActualLength    uint32
	StartFrame      uint32
	NumberOfPackets uint32
	ErrorCount      uint32
	Data            []byte // the IN data
}

// RetUnlinkMsg is a USBIP_RET_UNLINK.
type RetUnlinkMsg struct {
	Seqnum uint32
	Status int32
}

func basic(b []byte, cmd, seq, devid, dir, ep uint32) {
	binary.BigEndian.PutUint32(b[cmdBasicCommandOffset:], cmd)
	binary.BigEndian.PutUint32(b[cmdBasicSeqnumOffset:], seq)
	binary.BigEndian.PutUint32(b[cmdBasicDevidOffset:], devid)
	binary.BigEndian.PutUint32(b[cmdBasicDirOffset:], dir)
	binary.BigEndian.PutUint32(b[cmdBasicEPOffset:], ep)
}

// Encode encodes the command with its OUT data.
func (s Submit) Encode() []byte {
	b := make([]byte, urbHeaderSize, urbHeaderSize+len(s.Data))
	basic(b, CmdSubmit, s.Seqnum, s.DevID, s.Direction, s.EP)
	binary.BigEndian.PutUint32(b[submitFlagsOffset:], s.TransferFlags)
	binary.BigEndian.PutUint32(b[submitLengthOffset:], s.Length)
	binary.BigEndian.PutUint32(b[submitStartOffset:], s.StartFrame)
	binary.BigEndian.PutUint32(b[submitPacketsOffset:], s.NumberOfPackets)
	binary.BigEndian.PutUint32(b[submitIntervalOffset:], s.Interval)
	copy(b[setupOffset:], s.Setup[:])
	return append(b, s.Data...)
}

// Encode encodes the command.
func (u Unlink) Encode() []byte {
	b := make([]byte, urbHeaderSize)
	basic(b, CmdUnlink, u.Seqnum, u.DevID, 0, 0)
	binary.BigEndian.PutUint32(b[unlinkSeqnumOffset:], u.UnlinkSeqnum)
	return b
}

// Encode encodes the reply with its IN data. devid, direction and ep are 0 in a server's reply.
func (r RetSubmitMsg) Encode() []byte {
	b := make([]byte, urbHeaderSize, urbHeaderSize+len(r.Data))
	basic(b, RetSubmit, r.Seqnum, 0, 0, 0)
	binary.BigEndian.PutUint32(b[retStatusOffset:], uint32(r.Status))
	binary.BigEndian.PutUint32(b[retActualOffset:], r.ActualLength)
	binary.BigEndian.PutUint32(b[submitStartOffset:], r.StartFrame)
	binary.BigEndian.PutUint32(b[retPacketsOffset:], r.NumberOfPackets)
	binary.BigEndian.PutUint32(b[retErrorCountOffset:], r.ErrorCount)
	return append(b, r.Data...)
}

// Encode encodes the reply.
func (r RetUnlinkMsg) Encode() []byte {
	b := make([]byte, urbHeaderSize)
	basic(b, RetUnlink, r.Seqnum, 0, 0, 0)
	binary.BigEndian.PutUint32(b[retStatusOffset:], uint32(r.Status))
	return b
}

// readFull reads len(b) bytes; a stream that ends part-way is a protocol error.
func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return protoErr("connection closed inside %s", what)
		}
		return err
	}
	return nil
}

// ReadCommand reads one URB command sent by a client: a *Submit or an *Unlink. Header fields that
// cannot be right (an unknown command, a direction other than 0 or 1, an endpoint over 15, a
// transfer over 1 MiB, ISO packets) are protocol errors; the stream cannot be resynchronised after
// them.
func ReadCommand(r io.Reader) (any, error) {
	var h [urbHeaderSize]byte
	if err := readFull(r, h[:], "a URB header"); err != nil {
		return nil, err
	}
	cmd := binary.BigEndian.Uint32(h[cmdBasicCommandOffset:])
	seq := binary.BigEndian.Uint32(h[cmdBasicSeqnumOffset:])
	devid := binary.BigEndian.Uint32(h[cmdBasicDevidOffset:])
	switch cmd {
	case CmdUnlink:
		return &Unlink{Seqnum: seq, DevID: devid, UnlinkSeqnum: binary.BigEndian.Uint32(h[unlinkSeqnumOffset:])}, nil
	case CmdSubmit:
	default:
		return nil, protoErr("URB command %#x, want CMD_SUBMIT (1) or CMD_UNLINK (2)", cmd)
	}
	s := &Submit{
		Seqnum: seq, DevID: devid,
		Direction:       binary.BigEndian.Uint32(h[cmdBasicDirOffset:]),
		EP:              binary.BigEndian.Uint32(h[cmdBasicEPOffset:]),
		TransferFlags:   binary.BigEndian.Uint32(h[submitFlagsOffset:]),
		Length:          binary.BigEndian.Uint32(h[submitLengthOffset:]),
		StartFrame:      binary.BigEndian.Uint32(h[submitStartOffset:]),
		NumberOfPackets: binary.BigEndian.Uint32(h[submitPacketsOffset:]),
		Interval:        binary.BigEndian.Uint32(h[submitIntervalOffset:]),
	}
	copy(s.Setup[:], h[setupOffset:])
	switch {
	case s.Direction != DirOut && s.Direction != DirIn:
		return nil, protoErr("CMD_SUBMIT seqnum %d: direction %d", seq, s.Direction)
	case s.EP > 15:
		return nil, protoErr("CMD_SUBMIT seqnum %d: endpoint %d", seq, s.EP)
	case s.Length > maxTransferLength:
		return nil, protoErr("CMD_SUBMIT seqnum %d: transfer of %d bytes over the %d-byte limit", seq, s.Length, maxTransferLength)
	case s.NumberOfPackets != noISOPackets && s.NumberOfPackets != 0:
		return nil, protoErr("CMD_SUBMIT seqnum %d: %d ISO packets, and the key has no isochronous endpoint", seq, s.NumberOfPackets)
	}
	if s.Direction == DirOut && s.Length > 0 {
		s.Data = make([]byte, s.Length)
		if err := readFull(r, s.Data, fmt.Sprintf("the %d-byte buffer of CMD_SUBMIT seqnum %d", s.Length, seq)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ReadReply reads one URB reply sent by a server: a *RetSubmitMsg or a *RetUnlinkMsg. in says
// whether seqnum's transfer was IN (only then does RET_SUBMIT carry data); nil means OUT.
func ReadReply(r io.Reader, in func(seqnum uint32) bool) (any, error) {
	var h [urbHeaderSize]byte
	if err := readFull(r, h[:], "a URB header"); err != nil {
		return nil, err
	}
	seq := binary.BigEndian.Uint32(h[cmdBasicSeqnumOffset:])
	switch cmd := binary.BigEndian.Uint32(h[cmdBasicCommandOffset:]); cmd {
	case RetUnlink:
		return &RetUnlinkMsg{Seqnum: seq, Status: int32(binary.BigEndian.Uint32(h[retStatusOffset:]))}, nil
	case RetSubmit:
	default:
		return nil, protoErr("URB reply %#x, want RET_SUBMIT (3) or RET_UNLINK (4)", cmd)
	}
	m := &RetSubmitMsg{
		Seqnum: seq, Status: int32(binary.BigEndian.Uint32(h[retStatusOffset:])),
		ActualLength:    binary.BigEndian.Uint32(h[retActualOffset:]),
		StartFrame:      binary.BigEndian.Uint32(h[submitStartOffset:]),
		NumberOfPackets: binary.BigEndian.Uint32(h[retPacketsOffset:]),
		ErrorCount:      binary.BigEndian.Uint32(h[retErrorCountOffset:]),
	}
	if m.ActualLength > maxTransferLength {
		return nil, protoErr("RET_SUBMIT seqnum %d: %d bytes", seq, m.ActualLength)
	}
	if in != nil && in(seq) && m.ActualLength > 0 {
		m.Data = make([]byte, m.ActualLength)
		if err := readFull(r, m.Data, "a RET_SUBMIT buffer"); err != nil {
			return nil, err
		}
	}
	return m, nil
}
