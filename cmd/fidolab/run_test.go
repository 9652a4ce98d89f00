package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/scenarios/report"
	"github.com/stretchr/testify/require"
)

// TestRunWholeCatalog is the main job as a newcomer runs it: every built-in case against the
// Windows model with in-process keys, reports written, exit code 0.
func TestRunWholeCatalog(t *testing.T) {
	dir := t.TempDir()
	js, xml, html := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml"), filepath.Join(dir, "r.html")
	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--report", js, "--report", xml, "--report", html)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "PASS")
	require.Contains(t, out, "multi-account-lock-screen")

	f, err := os.Open(js)
	require.NoError(t, err)
	defer f.Close()
	run, err := report.ReadJSON(f)
	require.NoError(t, err)
	require.Greater(t, len(run.Cases), 100)
	require.True(t, run.OK())
	for _, p := range []string{xml, html} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Greater(t, fi.Size(), int64(1000), p)
	}
}

// A user's own scenario file whose expectation is wrong makes the run fail with exit code 1 and
// shows what was observed.
func TestRunUserCatalogFailure(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.yaml"), []byte(`id: mine-wrong-expectation
title: Two accounts, the lock screen signs in as the first (wrong on purpose)
doc: "This scenario utilizes the last account added to the security key."
section: Unsupported scenarios
supported: false
windows: [11-24H2]
host: {join: entra, enable: intune-oma, online: true}
key: {persona: default, pin: "1234", accounts: [alice, bob]}
steps:
  - action: lock-screen-sign-in
    pin: "1234"
    expect: {signed-in: alice}
`), 0o600))
	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--catalog", dir, "--filter", "mine-")
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	require.Contains(t, out, "observed  signed-in as bob")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("id: x\nsteps:\n  - action: dance\n"), 0o600))
	code, _, errOut = runCLI(t, "run", "--quiet", "--catalog", dir)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "broken.yaml:")
}

func TestRunPersonaLeavesOutKeySpecificCases(t *testing.T) {
	// Every selected scenario left out: nothing runs, which only --allow-empty accepts.
	code, out, _ := runCLI(t, "run", "--quiet", "--ascii", "--persona", "no-hmac-secret", "--filter", "key-no-hmac-secret", "--allow-empty")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "left out 1 scenario(s)")

	code, out, _ = runCLI(t, "run", "--quiet", "--ascii", "--persona", "no-hmac-secret", "--filter", "sign-in-lock-screen")
	require.Equal(t, 1, code)
	require.Contains(t, out, "KEY ")
	require.Contains(t, strings.ToLower(out), "hmac-secret")
}

func TestRunList(t *testing.T) {
	code, out, _ := runCLI(t, "run", "--list", "--filter", "windows:10-1809")
	require.Equal(t, 0, code)
	require.Contains(t, out, "unlock-1809")
	require.NotContains(t, out, "11-24H2")
}

// TestRunSlowPersonaInProcess: a persona that works 1.5 s per request runs the whole catalog in
// about the time the default one takes, because in-process keys spend the delay on a virtual
// clock (it used to take many minutes of wall time).
func TestRunSlowPersonaInProcess(t *testing.T) {
	dir := t.TempDir()
	slow, js := filepath.Join(dir, "slow.yaml"), filepath.Join(dir, "r.json")
	require.NoError(t, os.WriteFile(slow, []byte("base: default\nname: slow\nquirks: {processingDelayMs: 1500}\n"), 0o600))
	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--persona", slow, "--report", js)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	f, err := os.Open(js)
	require.NoError(t, err)
	defer f.Close()
	run, err := report.ReadJSON(f)
	require.NoError(t, err)
	require.Greater(t, len(run.Cases), 100)
	require.Less(t, run.Duration, 30*time.Second, "the processing delay must not be spent in wall time")
}
