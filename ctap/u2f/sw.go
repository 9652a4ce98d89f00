// Package u2f holds the CTAP1/U2F raw messages (FIDO U2F Raw Message Formats v1.2):
// ISO 7816-4 command APDUs in short and extended form, the register, authenticate
// and version requests, their responses, and the byte strings each signature covers.
// Over CTAPHID these travel whole inside CTAPHID_MSG (CTAP 2.1 §11.2.9.1.1).
package u2f

import "fmt"

// StatusWord is the two-byte ISO 7816 status (SW1‖SW2) that ends every response APDU.
type StatusWord uint16

// Status words a U2F authenticator returns.
const (
	SWNoError                StatusWord = 0x9000
	SWConditionsNotSatisfied StatusWord = 0x6985 // user presence required (also the check-only "yes")
	SWWrongData              StatusWord = 0x6A80 // bad key handle or bad control byte
	SWWrongLength            StatusWord = 0x6700
	SWClaNotSupported        StatusWord = 0x6E00
	SWInsNotSupported        StatusWord = 0x6D00
)

var swNames = map[StatusWord]string{
	SWNoError: "SW_NO_ERROR", SWConditionsNotSatisfied: "SW_CONDITIONS_NOT_SATISFIED",
	SWWrongData: "SW_WRONG_DATA", SWWrongLength: "SW_WRONG_LENGTH",
	SWClaNotSupported: "SW_CLA_NOT_SUPPORTED", SWInsNotSupported: "SW_INS_NOT_SUPPORTED",
}

// String returns the spec name, e.g. "SW_WRONG_LENGTH".
func (s StatusWord) String() string {
	if n, ok := swNames[s]; ok {
		return n
	}
	return fmt.Sprintf("SW_0x%04X", uint16(s))
}

// Error makes a StatusWord usable as a Go error.
func (s StatusWord) Error() string { return s.String() }

// Error is a rejected command with the status word the authenticator answers with.
// errors.As(err, &sw) with a StatusWord finds it.
type Error struct {
	SW     StatusWord
	Reason string
}

func (e *Error) Error() string { return "u2f: " + e.Reason + " (" + e.SW.String() + ")" }

// Unwrap exposes the status word to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.SW }

func reject(sw StatusWord, format string, args ...any) *Error {
	return &Error{SW: sw, Reason: fmt.Sprintf(format, args...)}
}
