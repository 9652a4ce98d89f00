package authenticator

import (
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// checkKeyEncoding refuses a COSE key that is not even a well-formed map of the right CBOR types
// when the request is decoded, as a key that parses the whole request up front does (CTAP 2.1 §8:
// CTAP2_ERR_INVALID_CBOR, CTAP2_ERR_CBOR_UNEXPECTED_TYPE), rather than when (or whether) the
// extension is processed. A well-formed but unusable key is still refused later, in order.
func checkKeyEncoding(raw []byte) error {
	if len(raw) == 0 {
		return nil
	}
	_, err := cose.Unmarshal(raw)
	if s := ctap.StatusOf(err); s == ctap.ErrInvalidCBOR || s == ctap.ErrCBORUnexpectedType {
		return err
	}
	return nil
}

// hmacSecretKey is the platform key of an hmac-secret (or hmac-secret-mc) input, if any.
func hmacSecretKey(in *ctap.HMACSecretInput) []byte {
	if in == nil {
		return nil
	}
	return in.KeyAgreement
}
