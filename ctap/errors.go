package ctap

import (
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
)

// DecodeError is a CBOR decoding failure with the CTAP status that answers it.
type DecodeError struct {
	Status Status
	Err    error
}

func (e *DecodeError) Error() string   { return fmt.Sprintf("%v: %v", e.Status, e.Err) }
func (e *DecodeError) Unwrap() []error { return []error{e.Status, e.Err} }

func statusForCBOR(err error) Status {
	var (
		typeErr *cbor.UnmarshalTypeError
		keyErr  *cbor.InvalidMapKeyTypeError
		ours    *DecodeError // from a field's own UnmarshalCBOR (Bytes)
	)
	switch {
	case errors.As(err, &ours):
		return ours.Status
	case errors.As(err, &typeErr), errors.As(err, &keyErr):
		return ErrCBORUnexpectedType
	default:
		// Syntax errors, duplicate keys, indefinite lengths, tags, extraneous data and exceeded
		// nesting/length limits all mean the encoding itself is not acceptable CTAP2 CBOR.
		return ErrInvalidCBOR
	}
}

// StatusOf extracts the CTAP status from err: a Status anywhere in its chain, ErrOther otherwise,
// StatusOK for nil.
func StatusOf(err error) Status {
	if err == nil {
		return StatusOK
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return ErrOther
}

// Errorf returns an error carrying status s with a human-readable explanation for logs and traces.
func Errorf(s Status, format string, args ...any) error {
	return &statusError{s: s, msg: fmt.Sprintf(format, args...)}
}

type statusError struct {
	s   Status
	msg string
}

func (e *statusError) Error() string { return e.s.String() + ": " + e.msg }
func (e *statusError) Unwrap() error { return e.s }
