package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/probe"
	"github.com/stretchr/testify/require"
)

func TestProbeCommandPersona(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	html, js, pout := filepath.Join(dir, "p.html"), filepath.Join(dir, "p.json"), filepath.Join(dir, "mirror.yaml")
	code, out, errOut := runCLI(t, "probe", "--persona", "no-hmac-secret", "--report", html, "--report", js,
		"--persona-out", pout, "--filter", "re:^(sign-in-lock-screen|offline-after) windows:11-24H2", "--ascii")
	require.Equal(t, 1, code, "a key without hmac-secret is incompatible: %s", errOut)
	require.Contains(t, out, "XX hmac-secret for offline sign-in")
	require.Regexp(t, `key-incompatible ×\d+: no hmac-secret extension in getInfo`, out)
	b, err := os.ReadFile(js)
	require.NoError(t, err)
	r, err := probe.ReadJSON(strings.NewReader(string(b)))
	require.NoError(t, err)
	require.Equal(t, "incompatible", r.Verdict)
	require.NotNil(t, r.Catalog)
	require.Positive(t, r.Catalog.KeyIncompatible)
	for _, c := range r.Catalog.Cases {
		if c.ID == "offline-after-online-sign-in" {
			require.Equal(t, "key-incompatible", c.Verdict)
			require.Contains(t, c.Cause, "hmac-secret")
		}
	}
	h, err := os.ReadFile(html)
	require.NoError(t, err)
	require.Contains(t, string(h), `<tr id="hmac-secret">`)
	p, err := persona.Load(pout)
	require.NoError(t, err)
	require.False(t, p.HasExtension("hmac-secret"))

	code, out, errOut = runCLI(t, "probe", "--persona", "default", "--no-catalog", "--json")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, `"verdict": "compatible"`)

	for _, args := range [][]string{{"probe"}, {"probe", "--persona", "default", "--key", "socket:/x"}, {"probe", "--persona", "default", "--report", "x.txt"},
		{"probe", "--persona", "default", "--hid-slack", "-1s"}} {
		code, _, _ = runCLI(t, args...)
		require.Equal(t, 2, code, "%v is a usage error", args)
	}
}

// TestProbeCommandServedKey probes a served key without --destructive: what would erase it is
// skipped, with the reason, and the key keeps its PIN and credentials.
func TestProbeCommandServedKey(t *testing.T) {
	t.Parallel()
	state := seedState(t, "alice")
	s := startServe(t, "--state", state)
	code, out, errOut := runCLI(t, "probe", "--key", "socket:"+s.sock, "--no-catalog", "--ascii", "--pin", "1234")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "not destructive: checks that reset the key")
	require.Contains(t, out, "-- Reset within 10 s of power-up")
	require.Contains(t, out, "run with --destructive")
	require.Contains(t, out, "ok Registration and attestation")
	require.Contains(t, out, "unchanged apart from signature counters")
}
