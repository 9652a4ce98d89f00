package tracecase

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// record runs the built-in cases matching filter with fidolab run --trace's recorder.
func record(t *testing.T, filter string) *replay.Plan {
	t.Helper()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	var buf bytes.Buffer
	rec, err := trace.NewRecorder(&buf, trace.Options{Tool: "fidolab run"})
	require.NoError(t, err)
	run, err := runner.Run(context.Background(), cat, runner.Options{Filter: filter, Mark: rec.MarkCase,
		WrapConn: func(label string, now func() time.Time, c ctaphid.ReportConn) ctaphid.ReportConn {
			return rec.Conn(c, trace.Source{Transport: "inproc", Case: label, Now: now})
		}})
	require.NoError(t, err)
	require.True(t, run.OK())
	require.NoError(t, rec.Close())
	p, err := replay.ReadPlan(&buf)
	require.NoError(t, err)
	return p
}

// write infers group g of p, writes it into a fresh directory and loads that as a catalog.
func write(t *testing.T, p *replay.Plan, g *replay.Group, o Options) (*Case, *catalog.Catalog, string) {
	t.Helper()
	c, err := Infer(p, g, o)
	require.NoError(t, err)
	dir := t.TempDir()
	_, err = c.WriteFiles(filepath.Join(dir, c.ID+".yaml"), "test.trace.jsonl", c.PersonaWriter(p, "test.trace.jsonl"))
	require.NoError(t, err)
	cat, err := catalog.LoadDir(dir)
	require.NoError(t, err)
	body, _ := os.ReadFile(filepath.Join(dir, c.ID+".yaml"))
	return c, cat, string(body)
}

func runCatalog(t *testing.T, cat *catalog.Catalog) *result.Run {
	t.Helper()
	run, err := runner.Run(context.Background(), cat, runner.Options{})
	require.NoError(t, err)
	return run
}

// TestRunTraceRoundTrip: every case of the catalog fidolab run recorded becomes a scenario
// (actions and outcomes from the trace's marks, the device from the catalog, the key's persona
// from its getInfo) that fidolab run --catalog runs with the outcomes recorded.
func TestRunTraceRoundTrip(t *testing.T) {
	t.Parallel()
	p := record(t, "")
	require.Greater(t, len(p.Groups), 30)
	for _, g := range p.Groups {
		c, cat, body := write(t, p, g, Options{})
		require.Empty(t, c.Guesses, g.Label)
		run := runCatalog(t, cat)
		require.Len(t, run.Cases, 1, g.Label)
		rc := run.Cases[0]
		assert.Equal(t, result.Pass, rc.Verdict, "%s: %s\n%s", g.Label, rc.Error, body)
	}
}

func importFixture(t *testing.T, name string, procs map[int]string) *replay.Plan {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "harness", "trace", "winevent", "testdata", name))
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = winevent.Import(events, &buf, winevent.Options{Comment: "imported from " + name, Processes: procs})
	require.NoError(t, err)
	p, err := replay.ReadPlan(&buf)
	require.NoError(t, err)
	return p
}

// TestEventLogSignIn: LogonUI's sign-in from the event log becomes a lock-screen sign-in of the
// key's one account, on a guessed device and version (marked), that runs and signs in.
func TestEventLogSignIn(t *testing.T) {
	t.Parallel()
	p := importFixture(t, "logonui-signin.xml", map[int]string{1320: "LogonUI.exe"})
	c, cat, body := write(t, p, p.Groups[0], Options{})
	require.Equal(t, "field-lock-screen-sign-in", c.ID)
	require.Equal(t, "LogonUI.exe", c.Process)
	require.Contains(t, body, "# GUESS: the event log reports WebAuthN API version 8")
	require.Contains(t, body, "# GUESS: the trace does not describe the device")
	require.Contains(t, body, "# GUESS: the key had a PIN")
	require.Contains(t, body, "- action: lock-screen-sign-in\n    pin: \"7391\"\n    expect: {signed-in: user-1}")
	run := runCatalog(t, cat)
	require.Equal(t, result.Pass, run.Cases[0].Verdict)

	c, _, body = write(t, p, p.Groups[0], Options{Windows: "10-2004", ID: "ticket-4711"})
	require.Equal(t, "10-2004", c.Windows.Name)
	require.NotContains(t, body, "WebAuthN API version")
	require.Contains(t, body, "id: ticket-4711")
}

// TestEventLogRegistration: a browser's registration and failed sign-in become register and
// webauthn-sign-in steps with the outcomes the key gave, the stand-ins marked.
func TestEventLogRegistration(t *testing.T) {
	t.Parallel()
	p := importFixture(t, "browser-registration.xml", nil)
	c, cat, body := write(t, p, p.Groups[0], Options{})
	require.Len(t, c.Steps, 2)
	require.Contains(t, body, "- action: register\n    account: bob\n    pin: \"7391\"\n    expect: {registered: bob}")
	require.Contains(t, body, "expect: {error: no-credentials}")
	require.Contains(t, body, "# GUESS: the trace registers at webauthn.io")
	require.Contains(t, body, "# GUESS: the site asked for credentials the key never made")
	run := runCatalog(t, cat)
	require.Equal(t, result.Pass, run.Cases[0].Steps[len(run.Cases[0].Steps)-2].Verdict, "the registration reproduces")
	require.True(t, strings.HasPrefix(body, Magic))
}
