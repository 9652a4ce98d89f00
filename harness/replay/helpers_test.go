package replay

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/stretchr/testify/require"
	"time"
)

// runTrace runs the built-in catalog's cases matching filter on in-process keys (override, when
// not nil, instead of each scenario's persona) and returns the trace fidolab run --trace writes.
func runTrace(t *testing.T, filter string, override *persona.Persona) []byte {
	t.Helper()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	var buf bytes.Buffer
	rec, err := trace.NewRecorder(&buf, trace.Options{Tool: "fidolab run"})
	require.NoError(t, err)
	opts := runner.Options{Filter: filter, Parallel: 2, Mark: rec.MarkCase,
		WrapConn: func(label string, now func() time.Time, c ctaphid.ReportConn) ctaphid.ReportConn {
			return rec.Conn(c, trace.Source{Transport: "inproc", Case: label, Now: now})
		}}
	if override != nil {
		opts.Keys = runner.InProcess(override)
	}
	run, err := runner.Run(context.Background(), cat, opts)
	require.NoError(t, err)
	require.NoError(t, rec.Close())
	require.NotEmpty(t, run.Cases, filter)
	for _, c := range run.Cases {
		require.Equal(t, "pass", string(c.Verdict), "%s@%s: %s", c.ID, c.Version, c.Error)
	}
	return buf.Bytes()
}

// importFixture imports one of the event-log fixtures into a trace.
func importFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "trace", "winevent", "testdata", name))
	require.NoError(t, err)
	events, err := winevent.Parse(data)
	require.NoError(t, err)
	var buf bytes.Buffer
	_, err = winevent.Import(events, &buf, winevent.Options{Comment: "imported from " + name})
	require.NoError(t, err)
	return buf.Bytes()
}

func mustPlan(t *testing.T, b []byte) *Plan {
	t.Helper()
	p, err := ReadPlan(bytes.NewReader(b))
	require.NoError(t, err)
	return p
}

func builtin(t *testing.T, name string) *persona.Persona {
	t.Helper()
	p, err := persona.Builtin(name)
	require.NoError(t, err)
	return p
}

// replayOn replays b against fresh keys of persona p.
func replayOn(t *testing.T, b []byte, p *persona.Persona, o Options) *Result {
	t.Helper()
	keys := Emulated(p)
	defer keys.Close()
	res, err := Run(context.Background(), mustPlan(t, b), keys, o)
	require.NoError(t, err)
	return res
}

// text renders a result with every step.
func text(r *Result) string {
	var buf bytes.Buffer
	_ = WriteText(&buf, r, TextOptions{All: true, Steps: true})
	return buf.String()
}

func ctaphidClient(t *testing.T, conn ctaphid.ReportConn) *ctaphid.Client {
	t.Helper()
	hid := ctaphid.NewClient(conn)
	_, err := hid.Init(context.Background())
	require.NoError(t, err)
	return hid
}
