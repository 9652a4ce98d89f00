package ctap

import "github.com/fxamacker/cbor/v2"

// CredentialManagement subcommands.
const (
	CMGetCredsMetadata                      = 0x01
	CMEnumerateRPsBegin                     = 0x02
	CMEnumerateRPsGetNextRP                 = 0x03
	CMEnumerateCredentialsBegin             = 0x04
	CMEnumerateCredentialsGetNextCredential = 0x05
	CMDeleteCredential                      = 0x06
	CMUpdateUserInformation                 = 0x07
)

// CredentialManagementRequest is authenticatorCredentialManagement's parameter map.
// SubCommandParams stays raw: pinUvAuthParam authenticates its exact bytes.
type CredentialManagementRequest struct {
	SubCommand        *uint64         `cbor:"1,keyasint,omitempty"`
	SubCommandParams  cbor.RawMessage `cbor:"2,keyasint,omitempty"`
	PinUvAuthProtocol *uint64         `cbor:"3,keyasint,omitempty"`
	PinUvAuthParam    Bytes           `cbor:"4,keyasint,omitempty"`
}

// CredentialManagementParams is the decoded subCommandParams map.
type CredentialManagementParams struct {
	RPIDHash     Bytes                 `cbor:"1,keyasint,omitempty"`
	CredentialID *CredentialDescriptor `cbor:"2,keyasint,omitempty"`
	User         *UserEntity           `cbor:"3,keyasint,omitempty"`
}

// DecodeCredentialManagement decodes the request and, when present, its subCommandParams.
func DecodeCredentialManagement(b []byte) (*CredentialManagementRequest, *CredentialManagementParams, error) {
	var r CredentialManagementRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, nil, err
	}
	if r.SubCommand == nil {
		return nil, nil, Errorf(ErrMissingParameter, "credentialManagement: subCommand missing")
	}
	var p CredentialManagementParams
	if len(r.SubCommandParams) > 0 {
		if err := Unmarshal(r.SubCommandParams, &p); err != nil {
			return nil, nil, err
		}
	}
	return &r, &p, nil
}

// CredentialManagementResponse is authenticatorCredentialManagement's response map.
type CredentialManagementResponse struct {
	ExistingResidentCredentialsCount             *uint64               `cbor:"1,keyasint,omitempty"`
	MaxPossibleRemainingResidentCredentialsCount *uint64               `cbor:"2,keyasint,omitempty"`
	RP                                           *RPEntity             `cbor:"3,keyasint,omitempty"`
	RPIDHash                                     []byte                `cbor:"4,keyasint,omitempty"`
	TotalRPs                                     *uint64               `cbor:"5,keyasint,omitempty"`
	User                                         *UserEntity           `cbor:"6,keyasint,omitempty"`
	CredentialID                                 *CredentialDescriptor `cbor:"7,keyasint,omitempty"`
	PublicKey                                    cbor.RawMessage       `cbor:"8,keyasint,omitempty"`
	TotalCredentials                             *uint64               `cbor:"9,keyasint,omitempty"`
	CredProtect                                  *uint64               `cbor:"10,keyasint,omitempty"`
	LargeBlobKey                                 []byte                `cbor:"11,keyasint,omitempty"`
	ThirdPartyPayment                            *bool                 `cbor:"12,keyasint,omitempty"` // CTAP 2.2
}
