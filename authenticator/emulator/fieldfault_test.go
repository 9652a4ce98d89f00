package emulator

import (
	"testing"

	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// TestCorruptHMACSecretSignature: the fault flips one bit of the signature of a successful
// getAssertion that asked for hmac-secret, and leaves every other answer alone.
func TestCorruptHMACSecretSignature(t *testing.T) {
	t.Parallel()
	enc := func(cmd ctap.Command, v any) []byte {
		b, err := ctap.Marshal(v)
		require.NoError(t, err)
		return append([]byte{byte(cmd)}, b...)
	}
	cdh := make([]byte, 32)
	withHS := enc(ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: "login.microsoft.com", ClientDataHash: cdh,
		Extensions: &ctap.GetAssertionExtensions{HMACSecret: &ctap.HMACSecretInput{KeyAgreement: []byte{0xa0}, SaltEnc: make([]byte, 32), SaltAuth: make([]byte, 16), PinUvAuthProtocol: ctap.Uint(2)}}})
	without := enc(ctap.CmdGetAssertion, &ctap.GetAssertionRequest{RPID: "login.microsoft.com", ClientDataHash: cdh})
	sig := []byte{0x30, 0x06, 0x02, 0x01, 0x05, 0x02, 0x01, 0x07}
	resp := func(st ctap.Status) []byte {
		b, err := ctap.Marshal(&ctap.GetAssertionResponse{AuthData: make([]byte, 37), Signature: sig})
		require.NoError(t, err)
		return append([]byte{byte(st)}, b...)
	}
	bad, ok := corruptHMACSecretSignature(withHS, resp(ctap.StatusOK))
	require.True(t, ok)
	var r ctap.GetAssertionResponse
	require.NoError(t, ctap.Unmarshal(bad[1:], &r))
	require.Equal(t, byte(0x06), r.Signature[len(r.Signature)-1])
	require.Equal(t, sig[:len(sig)-1], r.Signature[:len(sig)-1])
	for name, c := range map[string][2][]byte{
		"no hmac-secret":  {without, resp(ctap.StatusOK)},
		"an error":        {withHS, {byte(ctap.ErrNoCredentials)}},
		"another command": {enc(ctap.CmdMakeCredential, &ctap.MakeCredentialRequest{ClientDataHash: cdh}), resp(ctap.StatusOK)},
	} {
		_, ok := corruptHMACSecretSignature(c[0], c[1])
		require.False(t, ok, name)
	}
}
