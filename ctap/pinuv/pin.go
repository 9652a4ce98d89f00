package pinuv

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
)

// PIN message sizes (CTAP 2.1 §6.5.5.5).
const (
	PaddedPINSize = 64
	MaxPINBytes   = PaddedPINSize - 1
	PINHashSize   = 16
)

// ErrPINTooLong reports a PIN with more than 63 bytes, which cannot be padded.
var ErrPINTooLong = errors.New("pinuv: PIN longer than 63 bytes")

// PadPIN returns the PIN's UTF-8 bytes right-padded with zeros to 64 bytes, the
// plaintext of newPinEnc. Policy checks (minimum length in code points) belong to
// the authenticator; only what makes the padding unambiguous is checked here.
func PadPIN(pin string) ([]byte, error) {
	if len(pin) > MaxPINBytes {
		return nil, ErrPINTooLong
	}
	if bytes.IndexByte([]byte(pin), 0) >= 0 {
		return nil, errors.New("pinuv: PIN contains a zero byte")
	}
	out := make([]byte, PaddedPINSize)
	copy(out, pin)
	return out, nil
}

// UnpadPIN strips the trailing zero bytes from a decrypted paddedNewPin. Input that is
// not 64 bytes is CTAP1_ERR_INVALID_PARAMETER; a 64-byte PIN with no padding is
// returned whole so that the authenticator's length policy can reject it.
func UnpadPIN(padded []byte) ([]byte, error) {
	if len(padded) != PaddedPINSize {
		return nil, fmt.Errorf("pinuv: padded PIN is %d bytes, want %d: %w", len(padded), PaddedPINSize, ctap.ErrInvalidParameter)
	}
	return bytes.Clone(bytes.TrimRight(padded, "\x00")), nil
}

// PINHash returns LEFT(SHA-256(pin), 16), the value pinHashEnc carries and the key stores.
func PINHash(pin string) []byte {
	sum := sha256.Sum256([]byte(pin))
	return sum[:PINHashSize]
}
