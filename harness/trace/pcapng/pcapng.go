// Package pcapng writes fidolab traces as pcapng captures that Wireshark and tshark open as USB
// HID traffic: the link type is LINKTYPE_USB_LINUX_MMAPPED (220), what Linux usbmon captures
// use, and each traced key is preceded by the enumeration a host does (device, configuration
// and HID report descriptors) so that Wireshark knows its interrupt endpoints carry HID reports
// of the FIDO usage page (0xF1D0).
//
// The file format (pcapng, draft-ietf-opsawg-pcapng) is written here directly: one Section
// Header Block, one Interface Description Block, then one Enhanced Packet Block per USB event.
package pcapng

import (
	"encoding/binary"
	"fmt"
	"io"
	"time"
)

// LinkTypeUSBLinuxMmapped is LINKTYPE_USB_LINUX_MMAPPED: a 64-byte usbmon header per packet.
const LinkTypeUSBLinuxMmapped = 220

// Block types and options of pcapng.
const (
	blockSHB        = 0x0A0D0D0A
	blockIDB        = 0x00000001
	blockEPB        = 0x00000006
	byteOrderMagic  = 0x1A2B3C4D
	optEndOfOpt     = 0
	optComment      = 1
	optSHBUserAppl  = 4
	optIfTsresol    = 9
	tsresolMicro    = 6 // 10^-6 s
	snapLen         = 0 // no limit
	sectionLenUnset = 0xFFFFFFFFFFFFFFFF
)

// Writer writes one pcapng section with one interface.
type Writer struct {
	w   io.Writer
	n   int // packets written
	err error
}

// NewWriter writes the section header and the interface description (link type 220,
// microsecond timestamps). app names the writing application.
func NewWriter(w io.Writer, app, comment string) (*Writer, error) {
	pw := &Writer{w: w}
	var shb []byte
	shb = binary.LittleEndian.AppendUint32(shb, byteOrderMagic)
	shb = binary.LittleEndian.AppendUint16(shb, 1) // major
	shb = binary.LittleEndian.AppendUint16(shb, 0) // minor
	shb = binary.LittleEndian.AppendUint64(shb, sectionLenUnset)
	if comment != "" {
		shb = appendOption(shb, optComment, []byte(comment))
	}
	shb = appendOption(shb, optSHBUserAppl, []byte(app))
	shb = appendOption(shb, optEndOfOpt, nil)
	pw.block(blockSHB, shb)
	var idb []byte
	idb = binary.LittleEndian.AppendUint16(idb, LinkTypeUSBLinuxMmapped)
	idb = binary.LittleEndian.AppendUint16(idb, 0) // reserved
	idb = binary.LittleEndian.AppendUint32(idb, snapLen)
	idb = appendOption(idb, optIfTsresol, []byte{tsresolMicro})
	idb = appendOption(idb, optEndOfOpt, nil)
	pw.block(blockIDB, idb)
	return pw, pw.err
}

// WritePacket writes one Enhanced Packet Block on interface 0.
func (pw *Writer) WritePacket(t time.Time, data []byte, comment string) error {
	us := uint64(t.UnixMicro())
	var epb []byte
	epb = binary.LittleEndian.AppendUint32(epb, 0) // interface 0
	epb = binary.LittleEndian.AppendUint32(epb, uint32(us>>32))
	epb = binary.LittleEndian.AppendUint32(epb, uint32(us))
	epb = binary.LittleEndian.AppendUint32(epb, uint32(len(data))) // captured
	epb = binary.LittleEndian.AppendUint32(epb, uint32(len(data))) // original
	epb = append(epb, data...)
	epb = pad4(epb)
	if comment != "" {
		epb = appendOption(epb, optComment, []byte(comment))
		epb = appendOption(epb, optEndOfOpt, nil)
	}
	pw.block(blockEPB, epb)
	if pw.err == nil {
		pw.n++
	}
	return pw.err
}

// Packets returns how many packets have been written.
func (pw *Writer) Packets() int { return pw.n }

// block writes type ‖ total length ‖ body ‖ total length.
func (pw *Writer) block(typ uint32, body []byte) {
	if pw.err != nil {
		return
	}
	total := uint32(12 + len(body))
	b := make([]byte, 0, total)
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = binary.LittleEndian.AppendUint32(b, total)
	b = append(b, body...)
	b = binary.LittleEndian.AppendUint32(b, total)
	if _, err := pw.w.Write(b); err != nil {
		pw.err = fmt.Errorf("pcapng: %w", err)
	}
}

func appendOption(b []byte, code uint16, value []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, code)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(value)))
	b = append(b, value...)
	return pad4(b)
}

func pad4(b []byte) []byte {
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
