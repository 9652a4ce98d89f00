package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

// seedState makes a state file holding resident credentials for the given users of example.com.
func seedState(t *testing.T, users ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.state")
	k, err := emulator.Open(emulator.Options{StatePath: path})
	require.NoError(t, err)
	hid := ctaphid.NewClient(k.Connect())
	ctx := context.Background()
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	c := client.New(hid)
	for _, u := range users {
		_, err := c.MakeCredential(ctx, mkReq("example.com", u))
		require.NoError(t, err)
	}
	require.NoError(t, k.Close())
	return path
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestKeyCommands(t *testing.T) {
	state := seedState(t, "alice", "bob")

	code, out, _ := runCLI(t, "key", "info", "--state", state)
	require.Equal(t, 0, code)
	require.Contains(t, out, "discoverable credentials:  2 of 25")
	require.Contains(t, out, "persona:")

	code, out, _ = runCLI(t, "key", "list", "--state", state, "--json")
	require.Equal(t, 0, code)
	var creds []emulator.CredentialInfo
	require.NoError(t, json.Unmarshal([]byte(out), &creds))
	require.Len(t, creds, 2)
	require.Equal(t, "bob", creds[0].UserName, "newest first")

	code, _, errOut := runCLI(t, "key", "delete", "--state", state)
	require.Equal(t, 2, code, "delete without a selector is a usage error")
	require.Contains(t, errOut, "--id")

	code, out, _ = runCLI(t, "key", "delete", "--state", state, "--rp", "example.com", "--user", "alice")
	require.Equal(t, 0, code)
	require.Contains(t, out, "deleted alice's credential")
	code, _, _ = runCLI(t, "key", "delete", "--state", state, "--id", creds[1].ID)
	require.Equal(t, 1, code, "alice's credential is already gone")

	code, _, errOut = runCLI(t, "key", "reset", "--state", state)
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "--yes")
	code, _, _ = runCLI(t, "key", "reset", "--state", state, "--yes")
	require.Equal(t, 0, code)
	code, out, _ = runCLI(t, "key", "list", "--state", state)
	require.Equal(t, 0, code)
	require.Contains(t, out, "no discoverable credentials")

	require.NoError(t, os.Chmod(state, 0o644))
	code, _, errOut = runCLI(t, "key", "info", "--state", state)
	require.Equal(t, 1, code, "a state file readable by others is refused")
	require.Contains(t, errOut, "0600")
}

func TestCLIUsage(t *testing.T) {
	code, _, errOut := runCLI(t, "frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "unknown command")
	code, out, _ := runCLI(t, "persona", "list")
	require.Equal(t, 0, code)
	require.Contains(t, out, "no-hmac-secret")
	code, _, _ = runCLI(t, "serve", "--transport", "carrier-pigeon")
	require.Equal(t, 2, code)
}
