package ctap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator data flags (WebAuthn §6.1).
const (
	FlagUP = 0x01
	FlagUV = 0x04
	FlagBE = 0x08
	FlagBS = 0x10
	FlagAT = 0x40
	FlagED = 0x80
)

// AttestedCredential is the attested credential data inside authenticator data.
type AttestedCredential struct {
	AAGUID       [16]byte
	CredentialID []byte
	PublicKey    cbor.RawMessage // COSE key, CTAP2 canonical CBOR
}

// AuthData is authenticator data, the structure every signature covers.
type AuthData struct {
	RPIDHash   [32]byte
	Flags      byte
	SignCount  uint32
	Attested   *AttestedCredential
	Extensions cbor.RawMessage // CBOR map of extension outputs, nil when none
}

// Marshal encodes authenticator data, setting the AT and ED flags from the content.
func (a *AuthData) Marshal() []byte {
	n := 37
	if a.Attested != nil {
		n += 18 + len(a.Attested.CredentialID) + len(a.Attested.PublicKey)
	}
	n += len(a.Extensions)
	b := make([]byte, 0, n)
	return a.AppendTo(b)
}

// AppendTo appends the encoding to b, so the request path can reuse buffers.
func (a *AuthData) AppendTo(b []byte) []byte {
	flags := a.Flags &^ (FlagAT | FlagED)
	if a.Attested != nil {
		flags |= FlagAT
	}
	if len(a.Extensions) > 0 {
		flags |= FlagED
	}
	b = append(b, a.RPIDHash[:]...)
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, a.SignCount)
	if a.Attested != nil {
		b = append(b, a.Attested.AAGUID[:]...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Attested.CredentialID)))
		b = append(b, a.Attested.CredentialID...)
		b = append(b, a.Attested.PublicKey...)
	}
	return append(b, a.Extensions...)
}

// ParseAuthData decodes authenticator data, checking that the flags match the content.
func ParseAuthData(b []byte) (*AuthData, error) {
	if len(b) < 37 {
		return nil, fmt.Errorf("authData: %d bytes, need at least 37", len(b))
	}
	a := &AuthData{Flags: b[32], SignCount: binary.BigEndian.Uint32(b[33:37])}
	copy(a.RPIDHash[:], b[:32])
	rest := b[37:]
	if a.Flags&FlagAT != 0 {
		if len(rest) < 18 {
			return nil, errors.New("authData: attested credential data truncated")
		}
		ac := &AttestedCredential{}
		copy(ac.AAGUID[:], rest[:16])
		l := int(binary.BigEndian.Uint16(rest[16:18]))
		rest = rest[18:]
		if len(rest) < l {
			return nil, errors.New("authData: credential ID truncated")
		}
		ac.CredentialID = rest[:l]
		rest = rest[l:]
		var pk cbor.RawMessage
		tail, err := decMode.UnmarshalFirst(rest, &pk)
		if err != nil {
			return nil, fmt.Errorf("authData: credential public key: %w", err)
		}
		ac.PublicKey = pk
		rest = tail
		a.Attested = ac
	}
	if a.Flags&FlagED != 0 {
		var ext cbor.RawMessage
		tail, err := decMode.UnmarshalFirst(rest, &ext)
		if err != nil {
			return nil, fmt.Errorf("authData: extensions: %w", err)
		}
		a.Extensions = ext
		rest = tail
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("authData: %d trailing bytes", len(rest))
	}
	return a, nil
}

// FlagNames names the authenticator data flags set in f ("UP|UV|AT"), "none" when none is.
func FlagNames(f byte) string {
	var names []string
	for _, x := range []struct {
		bit  byte
		name string
	}{{FlagUP, "UP"}, {FlagUV, "UV"}, {FlagBE, "BE"}, {FlagBS, "BS"}, {FlagAT, "AT"}, {FlagED, "ED"}} {
		if f&x.bit != 0 {
			names = append(names, x.name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}
