package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/stretchr/testify/require"
)

// importedTrace imports an event-log fixture with the CLI and returns the trace's path.
func importedTrace(t *testing.T, events string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "imported.trace.jsonl")
	code, _, errOut := runCLI(t, "trace", "import", events, "-o", out)
	require.Equal(t, 0, code, errOut)
	return out
}

func TestReplayCommand(t *testing.T) {
	t.Parallel()
	tr := importedTrace(t, logonEvents)
	code, out, errOut := runCLI(t, "replay", tr, "--key", "persona:default")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "SAME: every replayed step answered as the recorded key did")
	require.Contains(t, out, "set-up: PIN set")

	code, out, _ = runCLI(t, "replay", tr, "--key", "persona:ctap20", "--all")
	require.Equal(t, 1, code, "a difference exits 1")
	require.Contains(t, out, "FIRST DIFFERENCE #1")
	require.Contains(t, out, "≠ status: recorded CTAP2_OK, replayed CTAP1_ERR_INVALID_PARAMETER")

	code, out, _ = runCLI(t, "replay", "--json", tr, "--key", "persona:default")
	require.Equal(t, 0, code)
	require.Contains(t, out, `"ok": true`)

	rec := filepath.Join(t.TempDir(), "replay.trace.jsonl")
	code, _, errOut = runCLI(t, "replay", tr, "--key", "persona:default", "--trace", rec)
	require.Equal(t, 0, code, errOut)
	recs := readTrace(t, rec)
	require.Equal(t, "replay", recs[0].Transport, "the replay itself is recorded")

	for _, args := range [][]string{
		{"replay", tr},
		{"replay", tr, "--key", "persona:default", "--as-key"},
		{"replay", tr, "--key", "nonsense"},
		{"replay", tr, "--key", "persona:default", "--case", "x@11-24H2"},
		{"replay"},
	} {
		code, _, _ = runCLI(t, args...)
		require.Equal(t, 2, code, "%v is a usage error", args)
	}
}

// TestReplayAsKeyCommand serves the recorded key of the LogonUI sign-in and replays the trace
// against it over its socket, as a support engineer points a host at it.
func TestReplayAsKeyCommand(t *testing.T) {
	t.Parallel()
	tr := importedTrace(t, logonEvents)
	dir := t.TempDir()
	sock := filepath.Join(dir, "as-key.sock")
	pout := filepath.Join(dir, "recorded.yaml")
	cmd := exec.Command(fidolabBinary(t), "replay", tr, "--as-key", "--listen", "unix:"+sock, "--pin", "1357", "--persona-out", pout)
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// The child's stderr reaches the buffer through exec's copying goroutine, after the child
	// wrote it: wait for a line rather than read the buffer once.
	waitStderr := func(line, what string) {
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(stderr.String(), line) {
			require.True(t, time.Now().Before(deadline), "%s: %s", what, stderr.String())
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitStderr("fidolab: serving the key recorded in", "as-key did not start")
	require.Contains(t, stderr.String(), "made 1 credential(s) for login.microsoft.com")
	require.Contains(t, stderr.String(), "the key's PIN is 1357")

	code, out, errOut := runCLI(t, "replay", tr, "--key", "socket:"+sock, "--pin", "1357")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "SAME")
	waitStderr("authenticatorGetInfo → recorded CTAP2_OK", "as-key did not log the recorded getInfo answer")

	p, err := persona.Load(pout)
	require.NoError(t, err)
	require.Equal(t, "6f1a7b3e-0c1d-4e5f-9a8b-f1d0a11ab001", p.AAGUID.String())
	require.Equal(t, uint16(0xf1d0), p.HID.ProductID, "the USB identity comes from the event log's device path")
}

func TestTraceScenarioCommand(t *testing.T) {
	t.Parallel()
	tr := importedTrace(t, logonEvents)
	dir := t.TempDir()
	code, _, errOut := runCLI(t, "trace", "scenario", tr, "-o", filepath.Join(dir, "report.yaml"), "--id", "ticket-1234")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "personas/ticket-1234.yaml")
	cat, err := catalog.LoadDir(dir)
	require.NoError(t, err)
	require.Len(t, cat.Scenarios, 1)
	code, out, errOut := runCLI(t, "run", "--catalog", dir, "--filter", "ticket-1234", "--quiet", "--ascii")
	require.Equal(t, 0, code, out+errOut)
	require.Contains(t, out, "PASS")

	// A file that is not fidolab's is never overwritten.
	mine := filepath.Join(dir, "mine.yaml")
	require.NoError(t, os.WriteFile(mine, []byte("notes\n"), 0o644))
	code, _, errOut = runCLI(t, "trace", "scenario", tr, "-o", mine)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "is not a file fidolab wrote")

	code, out, _ = runCLI(t, "trace", "scenario", tr)
	require.Equal(t, 0, code)
	require.Contains(t, out, "action: lock-screen-sign-in")
}
