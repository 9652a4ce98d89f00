package authenticator

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/stretchr/testify/require"
)

// TestDebugLogKeepsSecrets runs a PIN-protected session, wrong PINs included, with debug logging
// on, and checks that neither the PIN, its hash, the pinUvAuthToken nor a private key reaches the log.
func TestDebugLogKeepsSecrets(t *testing.T) {
	var logBuf bytes.Buffer
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	st := store.NewMemory()
	c := clock.NewVirtual(epoch)
	a, err := New(Config{Persona: p, Store: st, User: user.Always, Clock: c,
		Logger: slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	require.NoError(t, err)
	defer a.Close()
	k := &testKey{Authenticator: a, t: t, clock: c, user: user.NewSwitch(user.Always)}

	const pin = "s3cr3t-PIN-7291"
	require.Equal(t, ctap.StatusOK, k.setPIN(2, pin))
	st2, _ := k.pinToken(2, "wrong-PIN-0000", ctap.PermMakeCredential, "example.com")
	require.Equal(t, ctap.ErrPINInvalid, st2)
	tok := k.mustToken(2, pin, ctap.PermMakeCredential|ctap.PermGetAssertion, "example.com")
	req := makeCredReq("example.com", []byte("alice"), true)
	req.PinUvAuthParam, req.PinUvAuthProtocol = authParam(t, 2, tok, req.ClientDataHash), ctap.Uint(2)
	k.must(ctap.CmdMakeCredential, req, nil)
	creds, err := st.Resident("example.com")
	require.NoError(t, err)
	require.Len(t, creds, 1)

	log := logBuf.String()
	require.Contains(t, log, "authenticatorClientPIN", "debug logging was on")
	h := sha256.Sum256([]byte(pin))
	for name, secret := range map[string]string{
		"PIN": pin, "wrong PIN": "wrong-PIN-0000", "PIN hash": hex.EncodeToString(h[:16]),
		"token": hex.EncodeToString(tok), "private key": hex.EncodeToString(creds[0].PrivateKey),
	} {
		require.False(t, strings.Contains(strings.ToLower(log), strings.ToLower(secret)), "%s in the debug log", name)
	}
}
