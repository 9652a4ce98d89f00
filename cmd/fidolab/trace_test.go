package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

const (
	sessionTrace = "../../harness/trace/testdata/session.trace.jsonl"
	logonEvents  = "../../harness/trace/winevent/testdata/logonui-signin.xml"
	browserXML   = "../../harness/trace/winevent/testdata/browser-registration.xml"
)

func readTrace(t *testing.T, path string) []*trace.Record {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	r, err := trace.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	var recs []*trace.Record
	for rec, err := range r.All() {
		require.NoError(t, err)
		recs = append(recs, rec)
	}
	return recs
}

func TestTraceShow(t *testing.T) {
	t.Parallel()
	code, out, errOut := runCLI(t, "trace", "show", sessionTrace)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "authenticatorGetAssertion → CTAP2_OK")
	require.Contains(t, out, "6 /pinHashEnc/: <redacted 32 bytes>")

	code, out, _ = runCLI(t, "trace", "show", "--json", sessionTrace)
	require.Equal(t, 0, code)
	var s trace.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &s))
	require.Len(t, s.Exchanges, 16)

	// A cut trace: the transcript so far, then the error naming the line, exit 1.
	b, err := os.ReadFile(sessionTrace)
	require.NoError(t, err)
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	require.NoError(t, os.WriteFile(cut, b[:len(b)/2], 0o644))
	code, out, errOut = runCLI(t, "trace", "show", cut)
	require.Equal(t, 1, code)
	require.Contains(t, out, "authenticatorGetInfo → CTAP2_OK")
	require.Regexp(t, `trace line \d+: trace is truncated`, errOut)

	for _, args := range [][]string{{"trace"}, {"trace", "show"}, {"trace", "frobnicate"}, {"trace", "pcap", sessionTrace}} {
		code, _, _ = runCLI(t, args...)
		require.Equal(t, 2, code, "%v is a usage error", args)
	}
	code, _, errOut = runCLI(t, "trace", "show", "no-such-file.jsonl")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no-such-file.jsonl")
}

func TestTracePcapCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.pcapng")
	lua := filepath.Join(dir, "fidolab-ctaphid.lua")
	code, _, errOut := runCLI(t, "trace", "pcap", "--lua", lua, sessionTrace, out)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "CTAPHID reports from 1 key(s)")
	l, err := os.ReadFile(lua)
	require.NoError(t, err)
	require.Contains(t, string(l), "register_postdissector")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Equal(t, []byte{0x0A, 0x0D, 0x0D, 0x0A}, b[:4])
	code, _, _ = runCLI(t, "trace", "pcap", "--lua", lua, sessionTrace, out)
	require.Equal(t, 0, code, "our own dissector file is replaced")
	// Writing again over our own pcapng is fine; over someone else's file it is refused.
	code, _, _ = runCLI(t, "trace", "pcap", sessionTrace, out)
	require.Equal(t, 0, code)
	notes := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(notes, []byte("my notes"), 0o644))
	code, _, errOut = runCLI(t, "trace", "pcap", sessionTrace, notes)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "not a file fidolab wrote")
	b, _ = os.ReadFile(notes)
	require.Equal(t, "my notes", string(b))
	// An event-log trace has no reports: its messages are framed for the capture.
	tr := filepath.Join(dir, "logon.jsonl")
	code, _, errOut = runCLI(t, "trace", "import", logonEvents, "-o", tr)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = runCLI(t, "trace", "pcap", tr, filepath.Join(dir, "logon.pcapng"))
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "reports framed from event-log messages")
}

func TestTraceImportCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "browser.jsonl")
	// Flags after the positional argument, as the docs write it.
	code, _, errOut := runCLI(t, "trace", "import", browserXML, "-o", out, "--process", "7788=msedge.exe")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "imported 17 events (2 operations, 5 CTAP exchanges)")
	require.Contains(t, errOut, "events fidolab does not understand, kept in the trace as they are: 2999 ×1, 1 of other providers")
	recs := readTrace(t, out)
	require.Equal(t, "msedge.exe", recs[0].Process)

	code, _, errOut = runCLI(t, "trace", "import", "--trace-secrets", "-o", filepath.Join(dir, "secret.jsonl"), logonEvents)
	require.Equal(t, 0, code)
	require.Contains(t, errOut, "WARNING: --trace-secrets")
	fi, err := os.Stat(filepath.Join(dir, "secret.jsonl"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a trace with secrets is private")

	bad := filepath.Join(dir, "bad.xml")
	require.NoError(t, os.WriteFile(bad, []byte("<Event><System><EventID>1003</EventID>\n<Broken"), 0o644))
	code, _, errOut = runCLI(t, "trace", "import", bad, "-o", filepath.Join(dir, "x.jsonl"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "event log line 2")
	code, _, _ = runCLI(t, "trace", "import", "--process", "nope", bad)
	require.Equal(t, 2, code)
}

// TestServeTrace records a served key on the device side: the trace holds the socket session,
// labelled with the transport and address, and no secret.
func TestServeTrace(t *testing.T) {
	tr := filepath.Join(t.TempDir(), "serve.jsonl")
	s := startServe(t, "--trace", tr)
	c := s.connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.SetPIN(ctx, "serve-pin-2468"))
	_, err := c.GetInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, s.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, s.cmd.Wait())
	require.Contains(t, s.stderr.String(), "wrote trace "+tr)

	recs := readTrace(t, tr)
	require.Equal(t, trace.SideDevice, recs[0].Side)
	require.Equal(t, "socket", recs[0].Transport)
	require.Equal(t, "unix:"+s.sock, recs[0].Endpoint)
	var peer string
	for _, r := range recs {
		if r.Type == trace.TypeNote && r.Peer != "" {
			peer = r.Peer
		}
	}
	require.Contains(t, peer, fmt.Sprintf("pid %d ", os.Getpid()), "the socket transport names the process that connected")
	var cmds []string
	for _, r := range recs {
		if r.Type == trace.TypeExchange && r.Request != nil {
			cmds = append(cmds, r.Request.Command)
		}
	}
	require.Equal(t, []string{"", "authenticatorGetInfo", "authenticatorClientPIN", "authenticatorClientPIN", "authenticatorGetInfo"}, cmds)
	b, _ := os.ReadFile(tr)
	require.Contains(t, string(b), "newPinEnc/: <redacted 80 bytes>")
	require.NotContains(t, strings.ToLower(string(b)), "7365727665") // "serve" of the PIN, in hex
}

func TestRunTrace(t *testing.T) {
	tr := filepath.Join(t.TempDir(), "run.jsonl")
	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--filter", "re:^sign-in-lock-screen", "--trace", tr)
	require.Equal(t, 0, code, "%s\n%s", out, errOut)
	recs := readTrace(t, tr)
	cases := map[string]bool{}
	exchanges := 0
	for _, r := range recs {
		if r.Type == trace.TypeSource {
			require.NotEmpty(t, r.Case)
			cases[r.Case] = true
		}
		if r.Type == trace.TypeExchange {
			exchanges++
		}
	}
	require.Contains(t, cases, "sign-in-lock-screen@11-24H2")
	require.Greater(t, exchanges, 20)
	code, _, _ = runCLI(t, "run", "--quiet", "--trace-secrets", "--filter", "re:^no-such-case$")
	require.Equal(t, 2, code, "--trace-secrets without --trace is a usage error")
}

// An event log is read only from a regular file: /dev/zero used to be read until memory ran out.
func TestTraceImportRefusesDevices(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI(t, "trace", "import", "/dev/zero", "-o", filepath.Join(t.TempDir(), "x.jsonl"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "/dev/zero: not a regular file: it is a character device")
}
