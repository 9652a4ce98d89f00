package ctap

import "github.com/fxamacker/cbor/v2"

// CredentialTypePublicKey is the only credential type CTAP defines.
const CredentialTypePublicKey = "public-key"

// RPEntity is PublicKeyCredentialRpEntity.
type RPEntity struct {
	ID   string `cbor:"id"`
	Name string `cbor:"name,omitempty"`
	Icon string `cbor:"icon,omitempty"`
}

// UserEntity is PublicKeyCredentialUserEntity.
type UserEntity struct {
	ID          Bytes  `cbor:"id"`
	Name        string `cbor:"name,omitempty"`
	DisplayName string `cbor:"displayName,omitempty"`
	Icon        string `cbor:"icon,omitempty"`
}

// CredentialDescriptor is PublicKeyCredentialDescriptor. Transports stay raw: platforms send odd
// values there (Windows has been seen sending an integer) and a key must not reject them.
type CredentialDescriptor struct {
	ID         Bytes           `cbor:"id"`
	Type       string          `cbor:"type"`
	Transports cbor.RawMessage `cbor:"transports,omitempty"`
}

// CredentialParam is one PublicKeyCredentialParameters entry.
type CredentialParam struct {
	Alg  *int64 `cbor:"alg"`
	Type string `cbor:"type"`
}

// Options is the options map of makeCredential and getAssertion. A nil field was not sent.
type Options struct {
	RK *bool `cbor:"rk,omitempty"`
	UP *bool `cbor:"up,omitempty"`
	UV *bool `cbor:"uv,omitempty"`
}

// Bool returns a pointer to b, for building options.
func Bool(b bool) *bool { return &b }

// HMACSecretInput is the getAssertion (and hmac-secret-mc) input of the hmac-secret extension.
// KeyAgreement is the platform's COSE key, decoded by package cose.
type HMACSecretInput struct {
	KeyAgreement      cbor.RawMessage `cbor:"1,keyasint,omitempty"`
	SaltEnc           Bytes           `cbor:"2,keyasint,omitempty"`
	SaltAuth          Bytes           `cbor:"3,keyasint,omitempty"`
	PinUvAuthProtocol *uint64         `cbor:"4,keyasint,omitempty"`
}

// MakeCredentialExtensions are the extension inputs a key understands at makeCredential.
type MakeCredentialExtensions struct {
	HMACSecret   *bool            `cbor:"hmac-secret,omitempty"`
	HMACSecretMC *HMACSecretInput `cbor:"hmac-secret-mc,omitempty"`
	CredProtect  *uint64          `cbor:"credProtect,omitempty"`
	CredBlob     Bytes            `cbor:"credBlob,omitempty"`
	LargeBlobKey *bool            `cbor:"largeBlobKey,omitempty"`
	MinPINLength *bool            `cbor:"minPinLength,omitempty"`
	// ThirdPartyPayment marks the credential as usable for Secure Payment Confirmation by
	// another origin (CTAP 2.2 thirdPartyPayment extension).
	ThirdPartyPayment *bool `cbor:"thirdPartyPayment,omitempty"`
}

// GetAssertionExtensions are the extension inputs a key understands at getAssertion.
type GetAssertionExtensions struct {
	HMACSecret   *HMACSecretInput `cbor:"hmac-secret,omitempty"`
	CredBlob     *bool            `cbor:"credBlob,omitempty"`
	LargeBlobKey *bool            `cbor:"largeBlobKey,omitempty"`
	// ThirdPartyPayment asks whether the credential was made for third-party payment.
	ThirdPartyPayment *bool `cbor:"thirdPartyPayment,omitempty"`
}

// CredProtect levels (CTAP 2.1 §12.1).
const (
	CredProtectUVOptional             = 1
	CredProtectUVOptionalWithCredList = 2
	CredProtectUVRequired             = 3
)
