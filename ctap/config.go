package ctap

import "github.com/fxamacker/cbor/v2"

// authenticatorConfig subcommands.
const (
	ConfigEnableEnterpriseAttestation = 0x01
	ConfigToggleAlwaysUV              = 0x02
	ConfigSetMinPINLength             = 0x03
	ConfigVendorPrototype             = 0xFF
)

// ConfigRequest is authenticatorConfig's parameter map.
type ConfigRequest struct {
	SubCommand        *uint64         `cbor:"1,keyasint,omitempty"`
	SubCommandParams  cbor.RawMessage `cbor:"2,keyasint,omitempty"`
	PinUvAuthProtocol *uint64         `cbor:"3,keyasint,omitempty"`
	PinUvAuthParam    Bytes           `cbor:"4,keyasint,omitempty"`
}

// SetMinPINLengthParams is setMinPINLength's subCommandParams map.
type SetMinPINLengthParams struct {
	NewMinPINLength   *uint64  `cbor:"1,keyasint,omitempty"`
	MinPINLengthRPIDs []string `cbor:"2,keyasint,omitempty"`
	ForceChangePIN    *bool    `cbor:"3,keyasint,omitempty"`
}

// DecodeConfig decodes the request; subCommandParams are decoded by the subcommand.
func DecodeConfig(b []byte) (*ConfigRequest, error) {
	var r ConfigRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, err
	}
	if r.SubCommand == nil {
		return nil, Errorf(ErrMissingParameter, "authenticatorConfig: subCommand missing")
	}
	return &r, nil
}
