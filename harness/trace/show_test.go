package trace_test

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/harness/trace"
	"github.com/stretchr/testify/require"
)

func TestShowTranscript(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/session.trace.jsonl")
	require.NoError(t, err)
	r, err := trace.NewReader(bytes.NewReader(data))
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, trace.Show(&out, r, trace.ShowOptions{Reports: true}))
	s := out.String()
	for _, want := range []string{
		"fidolab trace v1 · recorded 2026-11-25 16:35:42 UTC by test · secrets redacted",
		"source 1 · host side · inproc · test key",
		"authenticatorClientPIN → CTAP2_ERR_PIN_INVALID",
		"2 /subCommand/: 9 /getPinUvAuthTokenUsingPinWithPermissions/",
		"6 /pinHashEnc/: <redacted 32 bytes>",
		"{2 /pinUvAuthToken/: <redacted 48 bytes>}",
		"authData: rpIdHash 356c9ed4…, flags UP|UV|ED, signCount 2, extensions hmac-secret",
		"host→key ffffffff8600",
		"16 exchanges, 1 with an error status or no answer",
	} {
		require.Contains(t, s, want)
	}
	// The transcript of a cut trace shows what was read, then fails naming the line.
	lines := strings.SplitAfter(string(data), "\n")
	cut := strings.Join(lines[:40], "")
	r, err = trace.NewReader(strings.NewReader(cut))
	require.NoError(t, err)
	out.Reset()
	err = trace.Show(&out, r, trace.ShowOptions{})
	require.ErrorIs(t, err, trace.ErrTruncated)
	require.Contains(t, err.Error(), "trace line 40")
	require.Contains(t, out.String(), "authenticatorGetInfo → CTAP2_OK")
}

func TestShowJSON(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/session.trace.jsonl")
	require.NoError(t, err)
	defer f.Close()
	r, err := trace.NewReader(f)
	require.NoError(t, err)
	var out bytes.Buffer
	require.NoError(t, trace.ShowJSON(&out, r))
	var s trace.Summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &s))
	require.Len(t, s.Exchanges, len(sessionCommands))
	require.Len(t, s.Sources, 1)
	require.Equal(t, "authenticatorGetAssertion", s.Exchanges[13].Request.Command)
	require.Empty(t, s.Error)
}
