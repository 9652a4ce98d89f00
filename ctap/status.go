// Package ctap holds the CTAP 2.1 wire formats shared by the key and by host-side clients:
// command and status codes, CBOR request and response types, and the strict CBOR codec.
// It holds no device state and does no I/O.
package ctap

import (
	"fmt"
	"strconv"
	"strings"
)

// Status is a CTAP status code: the first byte of every CTAP2 response.
type Status byte

// CTAP status codes (CTAP 2.1 §8.2.1).
const (
	StatusOK                  Status = 0x00
	ErrInvalidCommand         Status = 0x01
	ErrInvalidParameter       Status = 0x02
	ErrInvalidLength          Status = 0x03
	ErrInvalidSeq             Status = 0x04
	ErrTimeout                Status = 0x05
	ErrChannelBusy            Status = 0x06
	ErrLockRequired           Status = 0x0A
	ErrInvalidChannel         Status = 0x0B
	ErrCBORUnexpectedType     Status = 0x11
	ErrInvalidCBOR            Status = 0x12
	ErrMissingParameter       Status = 0x14
	ErrLimitExceeded          Status = 0x15
	ErrFPDatabaseFull         Status = 0x17
	ErrLargeBlobStorageFull   Status = 0x18
	ErrCredentialExcluded     Status = 0x19
	ErrProcessing             Status = 0x21
	ErrInvalidCredential      Status = 0x22
	ErrUserActionPending      Status = 0x23
	ErrOperationPending       Status = 0x24
	ErrNoOperations           Status = 0x25
	ErrUnsupportedAlgorithm   Status = 0x26
	ErrOperationDenied        Status = 0x27
	ErrKeyStoreFull           Status = 0x28
	ErrUnsupportedOption      Status = 0x2B
	ErrInvalidOption          Status = 0x2C
	ErrKeepaliveCancel        Status = 0x2D
	ErrNoCredentials          Status = 0x2E
	ErrUserActionTimeout      Status = 0x2F
	ErrNotAllowed             Status = 0x30
	ErrPINInvalid             Status = 0x31
	ErrPINBlocked             Status = 0x32
	ErrPINAuthInvalid         Status = 0x33
	ErrPINAuthBlocked         Status = 0x34
	ErrPINNotSet              Status = 0x35
	ErrPUATRequired           Status = 0x36
	ErrPINPolicyViolation     Status = 0x37
	ErrRequestTooLarge        Status = 0x39
	ErrActionTimeout          Status = 0x3A
	ErrUPRequired             Status = 0x3B
	ErrUVBlocked              Status = 0x3C
	ErrIntegrityFailure       Status = 0x3D
	ErrInvalidSubcommand      Status = 0x3E
	ErrUVInvalid              Status = 0x3F
	ErrUnauthorizedPermission Status = 0x40
	ErrOther                  Status = 0x7F
)

var statusNames = map[Status]string{
	StatusOK: "CTAP2_OK", ErrInvalidCommand: "CTAP1_ERR_INVALID_COMMAND", ErrInvalidParameter: "CTAP1_ERR_INVALID_PARAMETER",
	ErrInvalidLength: "CTAP1_ERR_INVALID_LENGTH", ErrInvalidSeq: "CTAP1_ERR_INVALID_SEQ", ErrTimeout: "CTAP1_ERR_TIMEOUT",
	ErrChannelBusy: "CTAP1_ERR_CHANNEL_BUSY", ErrLockRequired: "CTAP1_ERR_LOCK_REQUIRED", ErrInvalidChannel: "CTAP1_ERR_INVALID_CHANNEL",
	ErrCBORUnexpectedType: "CTAP2_ERR_CBOR_UNEXPECTED_TYPE", ErrInvalidCBOR: "CTAP2_ERR_INVALID_CBOR",
	ErrMissingParameter: "CTAP2_ERR_MISSING_PARAMETER", ErrLimitExceeded: "CTAP2_ERR_LIMIT_EXCEEDED",
	ErrFPDatabaseFull: "CTAP2_ERR_FP_DATABASE_FULL", ErrLargeBlobStorageFull: "CTAP2_ERR_LARGE_BLOB_STORAGE_FULL",
	ErrCredentialExcluded: "CTAP2_ERR_CREDENTIAL_EXCLUDED", ErrProcessing: "CTAP2_ERR_PROCESSING",
	ErrInvalidCredential: "CTAP2_ERR_INVALID_CREDENTIAL", ErrUserActionPending: "CTAP2_ERR_USER_ACTION_PENDING",
	ErrOperationPending: "CTAP2_ERR_OPERATION_PENDING", ErrNoOperations: "CTAP2_ERR_NO_OPERATIONS",
	ErrUnsupportedAlgorithm: "CTAP2_ERR_UNSUPPORTED_ALGORITHM", ErrOperationDenied: "CTAP2_ERR_OPERATION_DENIED",
	ErrKeyStoreFull: "CTAP2_ERR_KEY_STORE_FULL", ErrUnsupportedOption: "CTAP2_ERR_UNSUPPORTED_OPTION",
	ErrInvalidOption: "CTAP2_ERR_INVALID_OPTION", ErrKeepaliveCancel: "CTAP2_ERR_KEEPALIVE_CANCEL",
	ErrNoCredentials: "CTAP2_ERR_NO_CREDENTIALS", ErrUserActionTimeout: "CTAP2_ERR_USER_ACTION_TIMEOUT",
	ErrNotAllowed: "CTAP2_ERR_NOT_ALLOWED", ErrPINInvalid: "CTAP2_ERR_PIN_INVALID", ErrPINBlocked: "CTAP2_ERR_PIN_BLOCKED",
	ErrPINAuthInvalid: "CTAP2_ERR_PIN_AUTH_INVALID", ErrPINAuthBlocked: "CTAP2_ERR_PIN_AUTH_BLOCKED",
	ErrPINNotSet: "CTAP2_ERR_PIN_NOT_SET", ErrPUATRequired: "CTAP2_ERR_PUAT_REQUIRED",
	ErrPINPolicyViolation: "CTAP2_ERR_PIN_POLICY_VIOLATION", ErrRequestTooLarge: "CTAP2_ERR_REQUEST_TOO_LARGE",
	ErrActionTimeout: "CTAP2_ERR_ACTION_TIMEOUT", ErrUPRequired: "CTAP2_ERR_UP_REQUIRED", ErrUVBlocked: "CTAP2_ERR_UV_BLOCKED",
	ErrIntegrityFailure: "CTAP2_ERR_INTEGRITY_FAILURE", ErrInvalidSubcommand: "CTAP2_ERR_INVALID_SUBCOMMAND",
	ErrUVInvalid: "CTAP2_ERR_UV_INVALID", ErrUnauthorizedPermission: "CTAP2_ERR_UNAUTHORIZED_PERMISSION",
	ErrOther: "CTAP1_ERR_OTHER",
}

// String returns the spec name of the status, e.g. "CTAP2_ERR_PIN_INVALID".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("CTAP_STATUS_0x%02X", byte(s))
}

// Error makes a non-OK Status usable as a Go error.
func (s Status) Error() string { return s.String() }

// ParseStatus reads a status by its spec name ("CTAP2_ERR_PIN_INVALID", case-insensitive, with or
// without the CTAP1_/CTAP2_ prefix) or as a number ("0x31", "49").
func ParseStatus(s string) (Status, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	for st, name := range statusNames {
		if t == name || t == strings.TrimPrefix(strings.TrimPrefix(name, "CTAP1_"), "CTAP2_") {
			return st, nil
		}
	}
	if v, err := strconv.ParseUint(t, 0, 8); err == nil {
		return Status(v), nil
	}
	if v, err := strconv.ParseUint(strings.ToLower(t), 0, 8); err == nil {
		return Status(v), nil
	}
	return 0, fmt.Errorf("unknown CTAP status %q", s)
}
