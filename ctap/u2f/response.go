package u2f

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Constants of the response formats.
const (
	// Version is the U2F_VERSION response data.
	Version = "U2F_V2"
	// RegisterReserved is the first byte of a register response.
	RegisterReserved byte = 0x05
	// PublicKeySize is an uncompressed P-256 point.
	PublicKeySize = 65
	// UserPresent is the user-presence byte of an authenticate response.
	UserPresent byte = 0x01
)

// ErrMalformedResponse reports a response the host cannot parse.
var ErrMalformedResponse = errors.New("u2f: malformed response")

// Response appends the status word to the response data.
func Response(data []byte, sw StatusWord) []byte {
	out := make([]byte, 0, len(data)+2)
	out = append(out, data...)
	return binary.BigEndian.AppendUint16(out, uint16(sw))
}

// ParseResponse splits a response APDU into its data and status word.
func ParseResponse(b []byte) (data []byte, sw StatusWord, err error) {
	if len(b) < 2 {
		return nil, 0, fmt.Errorf("%w: %d bytes, no status word", ErrMalformedResponse, len(b))
	}
	n := len(b) - 2
	return clone(b[:n]), StatusWord(binary.BigEndian.Uint16(b[n:])), nil
}

// RegisterResponse is the data of a successful U2F_REGISTER.
type RegisterResponse struct {
	PublicKey   [PublicKeySize]byte // uncompressed P-256 point, 0x04‖x‖y
	KeyHandle   []byte
	Certificate []byte // attestation certificate, one DER SEQUENCE
	Signature   []byte // ECDSA over RegisterSignedData, ASN.1 DER
}

// Marshal encodes 0x05 ‖ public key ‖ L ‖ key handle ‖ certificate ‖ signature.
// The certificate must be exactly one DER item, since the parser finds where it ends
// from its own length.
func (r RegisterResponse) Marshal() ([]byte, error) {
	if r.PublicKey[0] != 0x04 {
		return nil, errors.New("u2f: public key is not an uncompressed point")
	}
	if len(r.KeyHandle) > MaxKeyHandleSize {
		return nil, fmt.Errorf("u2f: key handle is %d bytes, at most %d fit", len(r.KeyHandle), MaxKeyHandleSize)
	}
	if n, err := derItemLength(r.Certificate); err != nil || n != len(r.Certificate) {
		return nil, errors.New("u2f: certificate is not exactly one DER SEQUENCE")
	}
	if len(r.Signature) == 0 {
		return nil, errors.New("u2f: empty signature")
	}
	out := make([]byte, 0, 1+PublicKeySize+1+len(r.KeyHandle)+len(r.Certificate)+len(r.Signature))
	out = append(out, RegisterReserved)
	out = append(out, r.PublicKey[:]...)
	out = append(out, byte(len(r.KeyHandle)))
	out = append(out, r.KeyHandle...)
	out = append(out, r.Certificate...)
	return append(out, r.Signature...), nil
}

// ParseRegisterResponse decodes the data of a register response (status word removed).
func ParseRegisterResponse(b []byte) (RegisterResponse, error) {
	var r RegisterResponse
	if len(b) < 1+PublicKeySize+1 {
		return r, fmt.Errorf("%w: register response is %d bytes", ErrMalformedResponse, len(b))
	}
	if b[0] != RegisterReserved {
		return r, fmt.Errorf("%w: reserved byte 0x%02X", ErrMalformedResponse, b[0])
	}
	if b[1] != 0x04 {
		return r, fmt.Errorf("%w: public key is not an uncompressed point", ErrMalformedResponse)
	}
	copy(r.PublicKey[:], b[1:1+PublicKeySize])
	rest := b[1+PublicKeySize:]
	khLen := int(rest[0])
	rest = rest[1:]
	if len(rest) < khLen {
		return RegisterResponse{}, fmt.Errorf("%w: key handle truncated", ErrMalformedResponse)
	}
	r.KeyHandle = clone(rest[:khLen])
	rest = rest[khLen:]
	certLen, err := derItemLength(rest)
	if err != nil {
		return RegisterResponse{}, fmt.Errorf("%w: attestation certificate: %v", ErrMalformedResponse, err)
	}
	r.Certificate = clone(rest[:certLen])
	r.Signature = clone(rest[certLen:])
	if len(r.Signature) == 0 {
		return RegisterResponse{}, fmt.Errorf("%w: no signature", ErrMalformedResponse)
	}
	return r, nil
}

// derItemLength returns the total size (header and content) of the DER SEQUENCE at
// the start of b, which must hold all of it.
func derItemLength(b []byte) (int, error) {
	if len(b) < 2 || b[0] != 0x30 {
		return 0, errors.New("not a DER SEQUENCE")
	}
	header, length := 2, int(b[1])
	if b[1]&0x80 != 0 {
		n := int(b[1] & 0x7f)
		if n == 0 || n > 3 {
			return 0, errors.New("unsupported DER length form")
		}
		if len(b) < 2+n {
			return 0, errors.New("DER length truncated")
		}
		length = 0
		for _, v := range b[2 : 2+n] {
			length = length<<8 | int(v)
		}
		header += n
	}
	if len(b)-header < length {
		return 0, errors.New("DER item truncated")
	}
	return header + length, nil
}

// AuthenticateResponse is the data of a successful U2F_AUTHENTICATE.
type AuthenticateResponse struct {
	UserPresence byte
	Counter      uint32
	Signature    []byte // ECDSA over AuthenticateSignedData, ASN.1 DER
}

// Marshal encodes user presence ‖ counter (big-endian) ‖ signature.
func (r AuthenticateResponse) Marshal() []byte {
	out := make([]byte, 0, 5+len(r.Signature))
	out = append(out, r.UserPresence)
	out = binary.BigEndian.AppendUint32(out, r.Counter)
	return append(out, r.Signature...)
}

// ParseAuthenticateResponse decodes the data of an authenticate response.
func ParseAuthenticateResponse(b []byte) (AuthenticateResponse, error) {
	if len(b) < 6 {
		return AuthenticateResponse{}, fmt.Errorf("%w: authenticate response is %d bytes", ErrMalformedResponse, len(b))
	}
	return AuthenticateResponse{
		UserPresence: b[0],
		Counter:      binary.BigEndian.Uint32(b[1:5]),
		Signature:    clone(b[5:]),
	}, nil
}

// RegisterSignedData is what the attestation key signs at registration:
// 0x00 ‖ application ‖ challenge ‖ key handle ‖ public key.
func RegisterSignedData(app, challenge [ParamSize]byte, keyHandle []byte, pub [PublicKeySize]byte) []byte {
	out := make([]byte, 0, 1+2*ParamSize+len(keyHandle)+PublicKeySize)
	out = append(out, 0x00)
	out = append(out, app[:]...)
	out = append(out, challenge[:]...)
	out = append(out, keyHandle...)
	return append(out, pub[:]...)
}

// AuthenticateSignedData is what the credential key signs at authentication:
// application ‖ user presence ‖ counter (big-endian) ‖ challenge.
func AuthenticateSignedData(app [ParamSize]byte, userPresence byte, counter uint32, challenge [ParamSize]byte) []byte {
	out := make([]byte, 0, 2*ParamSize+5)
	out = append(out, app[:]...)
	out = append(out, userPresence)
	out = binary.BigEndian.AppendUint32(out, counter)
	return append(out, challenge[:]...)
}
