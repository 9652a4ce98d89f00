package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

// skippedRun is a run on a key the runner was not allowed to erase: every case skipped with why.
func skippedRun() *result.Run {
	why := "the key is not empty (a PIN is set (8 retries left)); --destructive not given, so it was not erased"
	r := &result.Run{Started: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC), Target: "model", Key: "hidraw:/dev/hidraw0",
		Persona: "hidraw:/dev/hidraw0", Versions: []string{"10-1909", "11-24H2"}}
	for _, v := range r.Versions {
		r.Cases = append(r.Cases, &result.Case{ID: "lock-screen-sign-in", Version: v, Verdict: result.Skipped, Error: why})
	}
	r.Cases = append(r.Cases, &result.Case{ID: "reset-window", Version: "11-24H2", Verdict: result.Skipped,
		Error: "the case needs the key unplugged and replugged (a power-up), but it has no control API"})
	return r
}

func TestSkippedCasesInEveryReport(t *testing.T) {
	t.Parallel()
	r := skippedRun()
	require.False(t, r.OK())
	require.Equal(t, 3, r.Summary().Skipped)
	require.Zero(t, r.Summary().Errors)

	var term bytes.Buffer
	require.NoError(t, Terminal(&term, r, TerminalOptions{ASCII: true}))
	out := term.String()
	require.Contains(t, out, "SKIP skipped (see why below)")
	require.Contains(t, out, "Skipped (3): cases not run, and why")
	require.Contains(t, out, "--destructive not given")
	require.Contains(t, out, "lock-screen-sign-in  10-1909 11-24H2")
	require.Contains(t, out, "FAIL  3 cases: 0 passed, 0 failed, 0 key-incompatible, 0 errors, 3 skipped")
	require.NotContains(t, out, "Errors (", "skipped cases are not errors")

	var x bytes.Buffer
	require.NoError(t, JUnit(&x, r))
	var doc junitSuites
	require.NoError(t, xml.Unmarshal(x.Bytes(), &doc))
	require.Equal(t, 0, doc.Errors)
	require.Equal(t, 2, doc.Suites[0].Skipped)
	require.NotNil(t, doc.Suites[0].Cases[0].Skipped)
	require.Contains(t, doc.Suites[0].Cases[0].Skipped.Message, "--destructive not given")
	require.Nil(t, doc.Suites[0].Cases[0].Error)

	var md bytes.Buffer
	require.NoError(t, Markdown(&md, r))
	require.Contains(t, md.String(), "### Skipped (3)")
	require.NotContains(t, md.String(), "### Errors")

	var h bytes.Buffer
	require.NoError(t, HTML(&h, r))
	page := h.String()
	require.Contains(t, page, `<h2 id="skipped">Skipped: cases not run, and why</h2>`)
	require.Contains(t, page, `<div class="problem skip"><strong>Skipped:</strong>`)
	require.Equal(t, 3, strings.Count(page, `<td class="cell skip"`))
	require.Contains(t, page, `td.fail, td.keyinc, td.error, td.skip`, "a skipped row is not hidden as all-pass")
}
