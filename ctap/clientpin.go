package ctap

import "github.com/fxamacker/cbor/v2"

// ClientPIN subcommands.
const (
	PINGetRetries                         = 0x01
	PINGetKeyAgreement                    = 0x02
	PINSetPIN                             = 0x03
	PINChangePIN                          = 0x04
	PINGetPinToken                        = 0x05
	PINGetPinUvAuthTokenUsingUvWithPerms  = 0x06
	PINGetUVRetries                       = 0x07
	PINGetPinUvAuthTokenUsingPinWithPerms = 0x09
)

// pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7).
const (
	PermMakeCredential       = 0x01
	PermGetAssertion         = 0x02
	PermCredentialManagement = 0x04
	PermBioEnrollment        = 0x08
	PermLargeBlobWrite       = 0x10
	PermAuthenticatorConfig  = 0x20
	// PermPersistentCredMgmtRO (pcmr, CTAP 2.2 §6.5.5.7) grants read-only credential management
	// through a persistent pinUvAuthToken, on keys with the perCredMgmtRO option. It is 0x40;
	// 0x20 is acfg.
	PermPersistentCredMgmtRO = 0x40
)

// ClientPINRequest is authenticatorClientPIN's parameter map.
type ClientPINRequest struct {
	PinUvAuthProtocol *uint64         `cbor:"1,keyasint,omitempty"`
	SubCommand        *uint64         `cbor:"2,keyasint,omitempty"`
	KeyAgreement      cbor.RawMessage `cbor:"3,keyasint,omitempty"`
	PinUvAuthParam    Bytes           `cbor:"4,keyasint,omitempty"`
	NewPinEnc         Bytes           `cbor:"5,keyasint,omitempty"`
	PinHashEnc        Bytes           `cbor:"6,keyasint,omitempty"`
	Permissions       *uint64         `cbor:"9,keyasint,omitempty"`
	RPID              *string         `cbor:"10,keyasint,omitempty"`
}

// DecodeClientPIN decodes the request; per-subcommand parameter checks belong to the key.
func DecodeClientPIN(b []byte) (*ClientPINRequest, error) {
	var r ClientPINRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.SubCommand == nil {
		return nil, Errorf(ErrMissingParameter, "clientPIN: subCommand missing")
	}
	return &r, nil
}

// ClientPINResponse is authenticatorClientPIN's response map.
type ClientPINResponse struct {
	KeyAgreement    cbor.RawMessage `cbor:"1,keyasint,omitempty"`
	PinUvAuthToken  []byte          `cbor:"2,keyasint,omitempty"`
	PINRetries      *uint64         `cbor:"3,keyasint,omitempty"`
	PowerCycleState *bool           `cbor:"4,keyasint,omitempty"`
	UVRetries       *uint64         `cbor:"5,keyasint,omitempty"`
}

// Uint returns a pointer to v, for optional integer fields.
func Uint(v uint64) *uint64 { return &v }
