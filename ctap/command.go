package ctap

import "fmt"

// Command is the first byte of a CTAP2 request.
type Command byte

// CTAP2 commands (CTAP 2.1 §6), including the FIDO_2_1_PRE vendor-range previews.
const (
	CmdMakeCredential          Command = 0x01
	CmdGetAssertion            Command = 0x02
	CmdGetInfo                 Command = 0x04
	CmdClientPIN               Command = 0x06
	CmdReset                   Command = 0x07
	CmdGetNextAssertion        Command = 0x08
	CmdBioEnrollment           Command = 0x09
	CmdCredentialManagement    Command = 0x0A
	CmdSelection               Command = 0x0B
	CmdLargeBlobs              Command = 0x0C
	CmdConfig                  Command = 0x0D
	CmdBioEnrollmentPre        Command = 0x40
	CmdCredentialManagementPre Command = 0x41
)

var commandNames = map[Command]string{
	CmdMakeCredential: "authenticatorMakeCredential", CmdGetAssertion: "authenticatorGetAssertion",
	CmdGetInfo: "authenticatorGetInfo", CmdClientPIN: "authenticatorClientPIN", CmdReset: "authenticatorReset",
	CmdGetNextAssertion: "authenticatorGetNextAssertion", CmdBioEnrollment: "authenticatorBioEnrollment",
	CmdCredentialManagement: "authenticatorCredentialManagement", CmdSelection: "authenticatorSelection",
	CmdLargeBlobs: "authenticatorLargeBlobs", CmdConfig: "authenticatorConfig",
	CmdBioEnrollmentPre: "authenticatorBioEnrollment(preview)", CmdCredentialManagementPre: "authenticatorCredentialManagement(preview)",
}

// String returns the spec name of the command.
func (c Command) String() string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return fmt.Sprintf("command_0x%02X", byte(c))
}
