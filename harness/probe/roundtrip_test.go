package probe

import (
	"bytes"
	"context"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/keyprofile"
	"github.com/stretchr/testify/require"
)

// probeAndMirror probes a fresh key of persona p and returns the report and the persona the probe
// writes (--persona-out), read back from its YAML.
func probeAndMirror(t *testing.T, p *persona.Persona, destructive bool) (*Report, *persona.Persona) {
	t.Helper()
	r, pr, err := Probe(context.Background(), emulated(t, p), Options{Spec: "persona:" + p.Name, Destructive: destructive, Fill: destructive})
	require.NoError(t, err)
	mirror, guesses := pr.Persona()
	var buf bytes.Buffer
	require.NoError(t, keyprofile.WritePersona(&buf, mirror, guesses, "fidolab persona: test"))
	back, err := persona.Parse(buf.Bytes(), "mirror.yaml")
	require.NoError(t, err, buf.String())
	return r, back
}

// TestPersonaOutRoundTrip: probing each built-in persona, then the persona the probe wrote of it,
// gives the same report, check for check; and the persona written the second time is the first.
func TestPersonaOutRoundTrip(t *testing.T) {
	t.Parallel()
	for _, name := range persona.Names() {
		for _, destructive := range []bool{false, true} {
			t.Run(name+map[bool]string{true: "-destructive", false: ""}[destructive], func(t *testing.T) {
				t.Parallel()
				p, err := persona.Builtin(name)
				require.NoError(t, err)
				r1, mirror := probeAndMirror(t, p, destructive)
				r2, again := probeAndMirror(t, mirror, destructive)
				require.Equal(t, r1.Checks, r2.Checks)
				require.Equal(t, r1.Verdict, r2.Verdict)
				again.Description = mirror.Description // it names what was probed
				require.Equal(t, mirror, again)
				require.Equal(t, p.AAGUID, mirror.AAGUID)
				require.Equal(t, p.HID, mirror.HID)
			})
		}
	}
}

// TestQuirksAreMeasured: a key with every quirk is reported as such, and the persona the probe
// writes has the same quirks, capacity and USB identity, so the vendor's key can be emulated.
func TestQuirksAreMeasured(t *testing.T) {
	t.Parallel()
	p, err := persona.Load("testdata/quirky.yaml")
	require.NoError(t, err)
	r1, mirror := probeAndMirror(t, p, true)
	status := map[string]Status{}
	for _, c := range r1.Checks {
		status[c.ID] = c.Status
	}
	require.Equal(t, Fail, status["accounts-order"])
	require.Equal(t, Fail, status["keepalive"])
	require.Equal(t, Warn, status["reset"])
	require.Equal(t, Pass, status["capacity"])
	require.Equal(t, "incompatible", r1.Verdict)
	require.Equal(t, p.Quirks, mirror.Quirks)
	require.Equal(t, 3, mirror.ResidentCapacity)
	require.Equal(t, p.HID, mirror.HID)
	r2, _ := probeAndMirror(t, mirror, true)
	require.Equal(t, r1.Checks, r2.Checks)
}
