package authenticator

import (
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

func TestDispatchLimits(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")

	st, _ := k.call(ctap.Command(0x55), nil)
	require.Equal(t, ctap.ErrInvalidCommand, st, "unknown command")

	big := makeCredReq("example.com", []byte("u"), false)
	big.RP.Name = string(make([]byte, k.Persona().MaxMsgSize))
	st, _ = k.call(ctap.CmdMakeCredential, big)
	require.Equal(t, ctap.ErrRequestTooLarge, st, "request beyond the advertised maxMsgSize")

	resp := k.HandleCBOR(t.Context(), nil, nil)
	require.Equal(t, []byte{byte(ctap.ErrInvalidLength)}, resp, "empty CBOR message")

	u := newTestKey(t, "u2f")
	st, _ = u.call(ctap.CmdGetInfo, nil)
	require.Equal(t, ctap.ErrInvalidCommand, st, "a U2F-only key has no CTAP2")

	c := newTestKey(t, "ctap20")
	for _, cmd := range []ctap.Command{ctap.CmdCredentialManagement, ctap.CmdBioEnrollment, ctap.CmdLargeBlobs, ctap.CmdConfig, ctap.CmdSelection} {
		st, _ = c.call(cmd, nil)
		require.Equal(t, ctap.ErrInvalidCommand, st, "ctap20 persona must not answer %v", cmd)
	}
}

// TestDispatchTable checks that the full persona answers every CTAP2 command of the spec and its
// previews: a command missing from the table would be CTAP1_ERR_INVALID_COMMAND.
func TestDispatchTable(t *testing.T) {
	t.Parallel()
	k := newTestKey(t, "default")
	all := []ctap.Command{ctap.CmdMakeCredential, ctap.CmdGetAssertion, ctap.CmdGetInfo, ctap.CmdClientPIN,
		ctap.CmdReset, ctap.CmdGetNextAssertion, ctap.CmdBioEnrollment, ctap.CmdCredentialManagement,
		ctap.CmdSelection, ctap.CmdLargeBlobs, ctap.CmdConfig, ctap.CmdBioEnrollmentPre, ctap.CmdCredentialManagementPre}
	require.Len(t, commands, len(all))
	for _, cmd := range all {
		require.Contains(t, commands, cmd)
		st, _ := k.call(cmd, []byte{0xa0})
		require.NotEqual(t, ctap.ErrInvalidCommand, st, "%v", cmd)
	}
}

// FuzzHandleCBOR feeds any command byte and body to the key: it must always answer with a status
// byte (and CBOR only after CTAP2_OK), never panic, and keep answering getInfo.
func FuzzHandleCBOR(f *testing.F) {
	for _, c := range []byte{0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x40, 0x41} {
		f.Add(append([]byte{c}, 0xa0))
		f.Add([]byte{c})
	}
	f.Add([]byte{0x06, 0xa2, 0x01, 0x02, 0x02, 0x02})
	k := newTestKey(f, "default")
	f.Fuzz(func(t *testing.T, req []byte) {
		resp := k.HandleCBOR(t.Context(), req, func(byte) {})
		require.NotEmpty(t, resp)
		if resp[0] == byte(ctap.StatusOK) && len(resp) > 1 {
			var v any
			require.NoError(t, ctap.Unmarshal(resp[1:], &v), "a success carries valid CBOR")
		} else if resp[0] != byte(ctap.StatusOK) {
			require.Len(t, resp, 1, "an error is a bare status byte")
		}
		info := k.HandleCBOR(t.Context(), []byte{byte(ctap.CmdGetInfo)}, func(byte) {})
		require.Equal(t, byte(ctap.StatusOK), info[0])
	})
}
