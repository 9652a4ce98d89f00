package u2f

import (
	"encoding/binary"
	"fmt"
)

// Command is an ISO 7816-4 command APDU.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	// Ne is the maximum response length the host expects: 0 when the APDU has no
	// Le field, up to 256 (short) or 65536 (extended), where Le = 0 stands for the maximum.
	Ne int
	// Extended selects the extended length encoding (three-byte Lc, two-byte Le).
	Extended bool
}

// Limits of the two length encodings.
const (
	MaxShortData    = 255
	MaxShortNe      = 256
	MaxExtendedData = 65535
	MaxExtendedNe   = 65536
	headerSize      = 4
)

// ParseAPDU decodes the framing of a command APDU in any of the ISO 7816-4 cases,
// short or extended. Malformed lengths are SW_WRONG_LENGTH. The class and instruction
// are not checked; ParseCommand does that for U2F.
//
// One non-ISO form is accepted because libfido2 and python-fido2 send it for
// requests without data (U2F_VERSION): an extended Lc of zero followed by an
// extended Le, e.g. 00 03 00 00 | 00 00 00 | 00 00. Hardware keys take it.
func ParseAPDU(b []byte) (Command, error) {
	n := len(b)
	if n < headerSize {
		return Command{}, reject(SWWrongLength, "APDU is %d bytes, shorter than its header", n)
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[headerSize:]
	switch {
	case len(body) == 0: // case 1
	case len(body) == 1: // case 2S
		c.Ne = shortNe(body[0])
	case body[0] != 0: // cases 3S and 4S
		lc := int(body[0])
		switch len(body) {
		case 1 + lc:
		case 1 + lc + 1:
			c.Ne = shortNe(body[1+lc])
		default:
			return Command{}, reject(SWWrongLength, "short Lc %d does not match %d body bytes", lc, len(body))
		}
		c.Data = clone(body[1 : 1+lc])
	case len(body) == 3: // case 2E
		c.Extended = true
		c.Ne = extendedNe(body[1:3])
	case len(body) < 3:
		return Command{}, reject(SWWrongLength, "extended length field is truncated")
	default: // cases 3E and 4E
		c.Extended = true
		lc := int(binary.BigEndian.Uint16(body[1:3]))
		switch len(body) {
		case 3 + lc: // lc > 0 here: a zero lc with nothing after it is case 2E above
		case 3 + lc + 2:
			c.Ne = extendedNe(body[3+lc:])
		default:
			return Command{}, reject(SWWrongLength, "extended Lc %d does not match %d body bytes", lc, len(body))
		}
		c.Data = clone(body[3 : 3+lc])
	}
	return c, nil
}

// ParseCommand decodes a U2F command APDU: framing as ParseAPDU, then CLA 0 and one
// of the three U2F instructions. Errors are *Error with the status word to return.
func ParseCommand(b []byte) (Command, error) {
	c, err := ParseAPDU(b)
	if err != nil {
		return Command{}, err
	}
	if c.CLA != 0 {
		return Command{}, reject(SWClaNotSupported, "class 0x%02X", c.CLA)
	}
	switch c.INS {
	case InsRegister, InsAuthenticate, InsVersion:
		return c, nil
	}
	// The vendor range 0x40–0xBF lands here too: this authenticator defines none.
	return Command{}, reject(SWInsNotSupported, "instruction 0x%02X", c.INS)
}

// Encode returns the APDU in the encoding c.Extended selects.
func (c Command) Encode() ([]byte, error) {
	if c.Ne < 0 {
		return nil, fmt.Errorf("u2f: negative Ne %d", c.Ne)
	}
	out := []byte{c.CLA, c.INS, c.P1, c.P2}
	if !c.Extended {
		if len(c.Data) > MaxShortData || c.Ne > MaxShortNe {
			return nil, fmt.Errorf("u2f: %d data bytes, Ne %d do not fit a short APDU", len(c.Data), c.Ne)
		}
		if len(c.Data) > 0 {
			out = append(out, byte(len(c.Data)))
			out = append(out, c.Data...)
		}
		if c.Ne > 0 {
			out = append(out, byte(c.Ne)) // 256 wraps to 0, its encoding
		}
		return out, nil
	}
	if len(c.Data) > MaxExtendedData || c.Ne > MaxExtendedNe {
		return nil, fmt.Errorf("u2f: %d data bytes, Ne %d do not fit an extended APDU", len(c.Data), c.Ne)
	}
	if len(c.Data) > 0 {
		out = append(out, 0, byte(len(c.Data)>>8), byte(len(c.Data)))
		out = append(out, c.Data...)
	} else if c.Ne > 0 {
		out = append(out, 0)
	}
	if c.Ne > 0 {
		out = append(out, byte(c.Ne>>8), byte(c.Ne)) // 65536 wraps to 0000, its encoding
	}
	return out, nil
}

// EncodeCommand is c.Encode, for symmetry with ParseCommand.
func EncodeCommand(c Command) ([]byte, error) { return c.Encode() }

func shortNe(le byte) int {
	if le == 0 {
		return MaxShortNe
	}
	return int(le)
}

func extendedNe(le []byte) int {
	if v := int(binary.BigEndian.Uint16(le)); v != 0 {
		return v
	}
	return MaxExtendedNe
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
