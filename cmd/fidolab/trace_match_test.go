package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTraceMatchFieldReports: a trace recorded from each field-report case that triggers its
// failure is matched to that case (with --trace-secrets where the signature needs the assertion's
// authData); a trace of every other case (a healthy run) matches none, and trace match exits 1.
func TestTraceMatchFieldReports(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		id      string
		secrets bool
	}{
		{id: "field-touch-probe-pin-set"},
		{id: "field-browser-preflight-single-use-token"},
		{id: "field-long-upn-refused"},
		{id: "field-hmac-secret-bad-signature", secrets: true},
		{id: "field-reset-refused"},
		{id: "field-silent-up0-refused"},
	} {
		tr := filepath.Join(dir, tc.id+".jsonl")
		args := []string{"run", "--quiet", "--filter", "re:^" + tc.id + "$", "--trace", tr}
		if tc.secrets {
			args = append(args, "--trace-secrets")
		}
		code, _, errOut := runCLI(t, args...)
		require.Equal(t, 0, code, errOut)
		code, out, errOut := runCLI(t, "trace", "match", "--json", tr)
		require.Equal(t, 0, code, errOut)
		var res matchResult
		require.NoError(t, json.Unmarshal([]byte(out), &res), out)
		var ids []string
		for _, m := range res.Matches {
			ids = append(ids, m.ID)
			require.NotEmpty(t, m.Why, "%s: a match says why", m.ID)
			require.NotEmpty(t, m.Events, "%s: a match names the event IDs", m.ID)
		}
		require.Equal(t, []string{tc.id}, ids, "trace of %s", tc.id)
	}

	healthy := filepath.Join(dir, "healthy.jsonl")
	code, _, errOut := runCLI(t, "run", "--quiet", "--filter", "!tag:field-report", "--trace", healthy, "--trace-secrets")
	require.Equal(t, 0, code, errOut)
	code, out, errOut := runCLI(t, "trace", "match", healthy)
	require.Equal(t, 1, code, out+errOut)
	require.Contains(t, out, "no known field failure matches")

	text := filepath.Join(dir, "field-touch-probe-pin-set.jsonl")
	code, out, _ = runCLI(t, "trace", "match", text)
	require.Equal(t, 0, code)
	for _, want := range []string{"resembles field-touch-probe-pin-set", "dani-garcia/vaultwarden/issues/7437", "answered CTAP2_ERR_PIN_INVALID", "1000, 2104, 1101, 1002", "fidolab run --filter field-touch-probe-pin-set"} {
		require.Contains(t, out, want)
	}
}

func TestTraceMatchUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"trace", "match"}, {"trace", "match", "a", "b"}, {"trace", "match", "--nope", "x"}} {
		code, _, errOut := runCLI(t, args...)
		require.Equal(t, 2, code, "%v: %s", args, errOut)
	}
	bad := filepath.Join(t.TempDir(), "not-a-trace")
	require.NoError(t, os.WriteFile(bad, []byte("hello\n"), 0o600))
	code, _, errOut := runCLI(t, "trace", "match", bad)
	require.Equal(t, 1, code)
	require.True(t, slices.ContainsFunc(strings.Split(errOut, "\n"), func(l string) bool { return strings.Contains(l, "not-a-trace") }), errOut)
}
