package u2f

// U2F instructions (INS byte).
const (
	InsRegister     byte = 0x01
	InsAuthenticate byte = 0x02
	InsVersion      byte = 0x03
)

// Control is the P1 byte of an authenticate request.
type Control byte

// Authenticate control bytes.
const (
	ControlEnforceUserPresence     Control = 0x03 // sign only after a test of user presence
	ControlCheckOnly               Control = 0x07 // only say whether the key handle is ours
	ControlDontEnforceUserPresence Control = 0x08 // sign; presence may be skipped
)

// Sizes fixed by the raw message format.
const (
	ParamSize        = 32 // challenge and application parameters
	MaxKeyHandleSize = 255
	registerDataSize = 2 * ParamSize
)

// RegisterRequest is the body of U2F_REGISTER.
type RegisterRequest struct {
	Challenge   [ParamSize]byte
	Application [ParamSize]byte
}

// AuthenticateRequest is the body of U2F_AUTHENTICATE.
type AuthenticateRequest struct {
	Control     Control
	Challenge   [ParamSize]byte
	Application [ParamSize]byte
	KeyHandle   []byte
}

// ParseRegisterRequest reads a register request: exactly 64 data bytes. P1 is not
// checked: hosts send 0x00 or 0x03 and hardware keys take both.
func ParseRegisterRequest(c Command) (RegisterRequest, error) {
	if c.INS != InsRegister {
		return RegisterRequest{}, reject(SWInsNotSupported, "instruction 0x%02X is not register", c.INS)
	}
	if len(c.Data) != registerDataSize {
		return RegisterRequest{}, reject(SWWrongLength, "register data is %d bytes, want %d", len(c.Data), registerDataSize)
	}
	var r RegisterRequest
	copy(r.Challenge[:], c.Data[:ParamSize])
	copy(r.Application[:], c.Data[ParamSize:])
	return r, nil
}

// ParseAuthenticateRequest reads an authenticate request: control byte in P1, then
// challenge ‖ application ‖ L ‖ key handle of exactly L bytes. An unknown control
// byte is SW_WRONG_DATA.
func ParseAuthenticateRequest(c Command) (AuthenticateRequest, error) {
	if c.INS != InsAuthenticate {
		return AuthenticateRequest{}, reject(SWInsNotSupported, "instruction 0x%02X is not authenticate", c.INS)
	}
	if len(c.Data) < registerDataSize+1 {
		return AuthenticateRequest{}, reject(SWWrongLength, "authenticate data is %d bytes", len(c.Data))
	}
	khLen := int(c.Data[registerDataSize])
	if len(c.Data) != registerDataSize+1+khLen {
		return AuthenticateRequest{}, reject(SWWrongLength, "key handle length %d does not match %d data bytes", khLen, len(c.Data))
	}
	ctl := Control(c.P1)
	switch ctl {
	case ControlEnforceUserPresence, ControlCheckOnly, ControlDontEnforceUserPresence:
	default:
		return AuthenticateRequest{}, reject(SWWrongData, "control byte 0x%02X", c.P1)
	}
	r := AuthenticateRequest{Control: ctl, KeyHandle: clone(c.Data[registerDataSize+1:])}
	copy(r.Challenge[:], c.Data[:ParamSize])
	copy(r.Application[:], c.Data[ParamSize:registerDataSize])
	return r, nil
}

// ParseVersionRequest checks that a version request carries no data.
func ParseVersionRequest(c Command) error {
	if c.INS != InsVersion {
		return reject(SWInsNotSupported, "instruction 0x%02X is not version", c.INS)
	}
	if len(c.Data) != 0 {
		return reject(SWWrongLength, "version request has %d data bytes", len(c.Data))
	}
	return nil
}

// Command returns the request as an extended-length APDU expecting up to 65536
// response bytes, the form the raw message format specifies. Set Extended to false
// on the result for a short APDU.
func (r RegisterRequest) Command() Command {
	data := make([]byte, 0, registerDataSize)
	data = append(data, r.Challenge[:]...)
	data = append(data, r.Application[:]...)
	return Command{INS: InsRegister, Data: data, Ne: MaxExtendedNe, Extended: true}
}

// Command returns the request as an extended-length APDU; it fails only for a key
// handle longer than 255 bytes.
func (r AuthenticateRequest) Command() (Command, error) {
	if len(r.KeyHandle) > MaxKeyHandleSize {
		return Command{}, reject(SWWrongLength, "key handle is %d bytes, at most %d fit", len(r.KeyHandle), MaxKeyHandleSize)
	}
	data := make([]byte, 0, registerDataSize+1+len(r.KeyHandle))
	data = append(data, r.Challenge[:]...)
	data = append(data, r.Application[:]...)
	data = append(data, byte(len(r.KeyHandle)))
	data = append(data, r.KeyHandle...)
	return Command{INS: InsAuthenticate, P1: byte(r.Control), Data: data, Ne: MaxExtendedNe, Extended: true}, nil
}

// VersionCommand returns the U2F_VERSION request as an extended-length APDU.
func VersionCommand() Command {
	return Command{INS: InsVersion, Ne: MaxExtendedNe, Extended: true}
}
