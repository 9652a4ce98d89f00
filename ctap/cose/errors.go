package cose

import (
	"errors"
	"io"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// Error reports why a COSE key was rejected, together with the CTAP status a key
// returns for it. errors.As(err, &status) with a ctap.Status finds the status.
type Error struct {
	Status ctap.Status
	Reason string
}

func (e *Error) Error() string { return "cose: " + e.Reason + " (" + e.Status.String() + ")" }

// Unwrap exposes the CTAP status so errors.Is and errors.As reach it.
func (e *Error) Unwrap() error { return e.Status }

func newError(s ctap.Status, reason string) *Error { return &Error{Status: s, Reason: reason} }

// decodeError maps a CBOR library error to the status a hardware key answers with:
// bytes that are not well-formed CBOR are INVALID_CBOR, a well-formed item of the
// wrong major type is CBOR_UNEXPECTED_TYPE.
func decodeError(what string, err error) *Error {
	var typeErr *cbor.UnmarshalTypeError
	var keyErr *cbor.InvalidMapKeyTypeError
	var field *ctap.DecodeError // from ctap.Bytes: the status is already decided
	switch {
	case errors.As(err, &field):
		return newError(field.Status, what+": "+field.Err.Error())
	case errors.As(err, &typeErr), errors.As(err, &keyErr):
		return newError(ctap.ErrCBORUnexpectedType, what+" has the wrong CBOR type")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return newError(ctap.ErrInvalidCBOR, what+" is truncated")
	default:
		return newError(ctap.ErrInvalidCBOR, what+" is not valid CBOR")
	}
}
