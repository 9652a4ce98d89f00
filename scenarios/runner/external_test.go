package runner

import (
	"testing"

	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

// TestExternalKeyOverSocket serves an emulated key over a report socket with its control API, as
// `fidolab serve` does, and runs cases on it: one at a time, the key replugged and reset between.
func TestExternalKeyOverSocket(t *testing.T) {
	t.Parallel()
	s := serveKey(t)
	k, ctx := s.k, t.Context()
	keys, err := External("socket:" + s.path + ",control=" + s.control)
	require.NoError(t, err)
	require.True(t, keys.Sequential())
	cat := loadTemp(t, fakeCatalog)
	// two-accounts registers alice and bob on both of its cases: without the reset between them
	// the second case would find four credentials and a PIN already set.
	run, err := Run(ctx, cat, Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Equal(t, "socket:"+s.path+",control="+s.control, run.Key)
	require.Len(t, run.Cases, 2)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s\n%s", c.ID, c.Version, c.Error, describe(c))
	}
	n, err := k.Store.CountResident()
	require.NoError(t, err)
	require.Equal(t, 2, n, "the key was reset between the two cases")
}

// TestExternalKeyAgainstModel: the Windows model reads a served key in wall time through its
// HID timeouts; a conforming key answers well within them, so the case passes over the socket
// as it does in-process.
func TestExternalKeyAgainstModel(t *testing.T) {
	t.Parallel()
	s := serveKey(t)
	keys, err := External("socket:" + s.path + ",control=" + s.control)
	require.NoError(t, err)
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	run, err := Run(t.Context(), cat, Options{Keys: keys, Filter: "re:^(sign-in-lock-screen|offline-after-replug)$ windows:11-24H2"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 2)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s %s\n%s", c.ID, c.Version, c.Error, c.KeyCause, describe(c))
	}
}
