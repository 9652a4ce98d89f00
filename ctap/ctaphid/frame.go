// Package ctaphid implements CTAPHID (CTAP 2.1 §11.2), the framing of CTAP messages into 64-byte HID
// reports, in both directions: the channel state machine of a key (Device) and a host-side Client.
// The framing itself (Fragment, EachPacket, Reassembler) does no I/O.
package ctaphid

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes of the CTAPHID framing at full-speed USB.
const (
	// ReportSize is the size of every HID report, in both directions.
	ReportSize = 64
	// initHeader is CID(4) + CMD(1) + BCNTH(1) + BCNTL(1).
	initHeader = 7
	// contHeader is CID(4) + SEQ(1).
	contHeader = 5
	// InitPayloadSize is the payload an initialization packet carries.
	InitPayloadSize = ReportSize - initHeader
	// ContPayloadSize is the payload a continuation packet carries.
	ContPayloadSize = ReportSize - contHeader
	// maxSeq is the last continuation sequence number: SEQ has 7 bits.
	maxSeq = 127
	// MaxMessageSize is the largest message one initialization and 128 continuation packets carry.
	MaxMessageSize = InitPayloadSize + (maxSeq+1)*ContPayloadSize
)

// BroadcastCID is the channel on which CTAPHID_INIT asks for a new channel.
const BroadcastCID uint32 = 0xffffffff

// CTAPHID commands, with the initialization-packet bit (0x80) set as they appear on the wire.
const (
	CmdPing      byte = 0x81
	CmdMsg       byte = 0x83
	CmdLock      byte = 0x84
	CmdInit      byte = 0x86
	CmdWink      byte = 0x88
	CmdCBOR      byte = 0x90
	CmdCancel    byte = 0x91
	CmdKeepalive byte = 0xBB
	CmdError     byte = 0xBF
)

// Keepalive status bytes (CTAP 2.1 §11.2.9.1.5).
const (
	StatusProcessing byte = 1
	StatusUPNeeded   byte = 2
)

// Capability flags in the CTAPHID_INIT response.
const (
	CapWink byte = 0x01
	CapCBOR byte = 0x04
	CapNMsg byte = 0x08
)

// ProtocolVersion is the CTAPHID protocol version a device reports in its INIT response.
const ProtocolVersion byte = 2

// ErrorCode is the one-byte payload of a CTAPHID_ERROR response. It implements error so the framing
// functions can return it directly.
type ErrorCode byte

// CTAPHID error codes (CTAP 2.1 §11.2.9.1.6).
const (
	ErrInvalidCmd     ErrorCode = 0x01
	ErrInvalidPar     ErrorCode = 0x02
	ErrInvalidLen     ErrorCode = 0x03
	ErrInvalidSeq     ErrorCode = 0x04
	ErrMsgTimeout     ErrorCode = 0x05
	ErrChannelBusy    ErrorCode = 0x06
	ErrLockRequired   ErrorCode = 0x0A
	ErrInvalidChannel ErrorCode = 0x0B
	ErrOther          ErrorCode = 0x7F
)

var errorNames = map[ErrorCode]string{
	ErrInvalidCmd: "ERR_INVALID_CMD", ErrInvalidPar: "ERR_INVALID_PAR", ErrInvalidLen: "ERR_INVALID_LEN",
	ErrInvalidSeq: "ERR_INVALID_SEQ", ErrMsgTimeout: "ERR_MSG_TIMEOUT", ErrChannelBusy: "ERR_CHANNEL_BUSY",
	ErrLockRequired: "ERR_LOCK_REQUIRED", ErrInvalidChannel: "ERR_INVALID_CHANNEL", ErrOther: "ERR_OTHER",
}

// String returns the spec name of the code.
func (e ErrorCode) String() string {
	if n, ok := errorNames[e]; ok {
		return n
	}
	return fmt.Sprintf("ERR_0x%02X", byte(e))
}

// Error makes an ErrorCode usable as a Go error.
func (e ErrorCode) Error() string { return "ctaphid: " + e.String() }

// ErrReportSize reports a report that is not exactly ReportSize bytes long.
var ErrReportSize = errors.New("ctaphid: report is not 64 bytes")

// ErrMessageTooLarge reports a payload longer than MaxMessageSize.
var ErrMessageTooLarge = errors.New("ctaphid: message longer than 7609 bytes")

// codePayloads holds one-byte payloads for error and keepalive messages so sending them allocates nothing.
var codePayloads = func() (t [256][1]byte) {
	for i := range t {
		t[i][0] = byte(i)
	}
	return t
}()

func oneByte(b byte) []byte { return codePayloads[b][:] }

// IsInit reports whether a report is an initialization packet (bit 7 of byte 4 set).
func IsInit(report []byte) bool { return len(report) > 4 && report[4]&0x80 != 0 }

// ReportCID returns the channel of a report.
func ReportCID(report []byte) uint32 { return binary.BigEndian.Uint32(report) }

// PacketCount returns how many reports a payload of n bytes takes.
func PacketCount(n int) int {
	if n <= InitPayloadSize {
		return 1
	}
	return 1 + (n-InitPayloadSize+ContPayloadSize-1)/ContPayloadSize
}

// EachPacket frames a message and calls fn with each report in order. The report slice is reused
// between calls, so fn must copy it to keep it; this lets a device stream a response without allocating.
func EachPacket(cid uint32, cmd byte, payload []byte, fn func(report []byte) error) error {
	var r [ReportSize]byte
	return eachPacket(&r, cid, cmd, payload, fn)
}

// eachPacket is EachPacket with a caller-owned scratch report, which keeps the report off the heap.
func eachPacket(r *[ReportSize]byte, cid uint32, cmd byte, payload []byte, fn func(report []byte) error) error {
	if len(payload) > MaxMessageSize {
		return ErrMessageTooLarge
	}
	clear(r[:])
	binary.BigEndian.PutUint32(r[:], cid)
	r[4] = cmd | 0x80
	binary.BigEndian.PutUint16(r[5:], uint16(len(payload)))
	n := copy(r[initHeader:], payload)
	if err := fn(r[:]); err != nil {
		return err
	}
	for seq := byte(0); n < len(payload); seq++ {
		r[4] = seq
		m := copy(r[contHeader:], payload[n:])
		clear(r[contHeader+m:])
		n += m
		if err := fn(r[:]); err != nil {
			return err
		}
	}
	return nil
}

// AppendFragments appends the reports of one message to dst, so a caller can reuse dst's storage.
func AppendFragments(dst [][ReportSize]byte, cid uint32, cmd byte, payload []byte) ([][ReportSize]byte, error) {
	if len(payload) > MaxMessageSize {
		return dst, ErrMessageTooLarge
	}
	dst = growReports(dst, PacketCount(len(payload)))
	err := EachPacket(cid, cmd, payload, func(r []byte) error {
		dst = append(dst, [ReportSize]byte(r))
		return nil
	})
	return dst, err
}

// Fragment splits a message into reports.
func Fragment(cid uint32, cmd byte, payload []byte) ([][ReportSize]byte, error) {
	return AppendFragments(nil, cid, cmd, payload)
}

func growReports(dst [][ReportSize]byte, n int) [][ReportSize]byte {
	if cap(dst)-len(dst) >= n {
		return dst
	}
	out := make([][ReportSize]byte, len(dst), len(dst)+n)
	copy(out, dst)
	return out
}
