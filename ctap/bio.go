package ctap

import "github.com/fxamacker/cbor/v2"

// BioEnrollment subcommands.
const (
	BioEnrollBegin              = 0x01
	BioEnrollCaptureNextSample  = 0x02
	BioCancelCurrentEnrollment  = 0x03
	BioEnumerateEnrollments     = 0x04
	BioSetFriendlyName          = 0x05
	BioRemoveEnrollment         = 0x06
	BioGetFingerprintSensorInfo = 0x07
)

// Modality and fingerprint kinds.
const (
	ModalityFingerprint = 0x01
	FingerprintTouch    = 0x01
	FingerprintSwipe    = 0x02
)

// Last enroll sample status values (CTAP 2.1 §6.7.4).
const (
	SampleGood                     = 0x00
	SampleTooHigh                  = 0x01
	SampleTooLow                   = 0x02
	SampleNoUserActivity           = 0x0A
	SampleNoUserPresenceTransition = 0x0B
	SampleMatchedExisting          = 0x0E
)

// BioEnrollmentRequest is authenticatorBioEnrollment's parameter map.
type BioEnrollmentRequest struct {
	Modality          *uint64         `cbor:"1,keyasint,omitempty"`
	SubCommand        *uint64         `cbor:"2,keyasint,omitempty"`
	SubCommandParams  cbor.RawMessage `cbor:"3,keyasint,omitempty"`
	PinUvAuthProtocol *uint64         `cbor:"4,keyasint,omitempty"`
	PinUvAuthParam    Bytes           `cbor:"5,keyasint,omitempty"`
	GetModality       *bool           `cbor:"6,keyasint,omitempty"`
}

// BioEnrollmentParams is the decoded subCommandParams map.
type BioEnrollmentParams struct {
	TemplateID           Bytes   `cbor:"1,keyasint,omitempty"`
	TemplateFriendlyName *string `cbor:"2,keyasint,omitempty"`
	TimeoutMilliseconds  *uint64 `cbor:"3,keyasint,omitempty"`
}

// DecodeBioEnrollment decodes the request and, when present, its subCommandParams.
func DecodeBioEnrollment(b []byte) (*BioEnrollmentRequest, *BioEnrollmentParams, error) {
	var r BioEnrollmentRequest
	if err := Unmarshal(b, &r); err != nil {
		return nil, nil, err
	}
	var p BioEnrollmentParams
	if len(r.SubCommandParams) > 0 {
		if err := Unmarshal(r.SubCommandParams, &p); err != nil {
			return nil, nil, err
		}
	}
	return &r, &p, nil
}

// TemplateInfo is one enrolled fingerprint.
type TemplateInfo struct {
	ID           []byte `cbor:"1,keyasint"`
	FriendlyName string `cbor:"2,keyasint"` // always sent: python-fido2 0.9.1 fails on an enumeration entry without it
}

// BioEnrollmentResponse is authenticatorBioEnrollment's response map.
type BioEnrollmentResponse struct {
	Modality                           *uint64        `cbor:"1,keyasint,omitempty"`
	FingerprintKind                    *uint64        `cbor:"2,keyasint,omitempty"`
	MaxCaptureSamplesRequiredForEnroll *uint64        `cbor:"3,keyasint,omitempty"`
	TemplateID                         []byte         `cbor:"4,keyasint,omitempty"`
	LastEnrollSampleStatus             *uint64        `cbor:"5,keyasint,omitempty"`
	RemainingSamples                   *uint64        `cbor:"6,keyasint,omitempty"`
	TemplateInfos                      []TemplateInfo `cbor:"7,keyasint,omitempty"`
	MaxTemplateFriendlyName            *uint64        `cbor:"8,keyasint,omitempty"`
}
