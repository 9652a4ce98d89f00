package runner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

// TestEmbeddedCatalogAgainstModel is the regression test: every case of the built-in catalog,
// against the Windows model, with each scenario's own persona, must observe what the document says.
func TestEmbeddedCatalogAgainstModel(t *testing.T) {
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	run, err := Run(context.Background(), cat, Options{})
	require.NoError(t, err)
	t.Logf("%d cases in %v", len(run.Cases), run.Duration)
	require.Equal(t, "model", run.Target)
	for _, c := range run.Cases {
		if c.Verdict != result.Pass {
			t.Errorf("%s @ %s: %s %s\n%s", c.ID, c.Version, c.Verdict, c.Error, describe(c))
		}
	}
	require.Less(t, run.Duration, 30*time.Second)
}

// TestUnlock1809FailsForTheRightReason: the document's "no unlock on 1809" has no rule of its own
// (it never decided anything); the unlock on 1809 is refused by the Entra joined version line,
// whose source cites the document's l.47.
func TestUnlock1809FailsForTheRightReason(t *testing.T) {
	t.Parallel()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	run, err := Run(context.Background(), cat, Options{Filter: "unlock-1809 windows:10-1809"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 1)
	c := run.Cases[0]
	require.Equal(t, result.Pass, c.Verdict)
	last := c.Steps[len(c.Steps)-1]
	require.Equal(t, "unlock", last.Action)
	require.Equal(t, "not-offered version-unsupported", last.Observed.String())
	notes := strings.Join(last.Notes, "\n")
	require.Contains(t, notes, "gated by rule entra-joined-version")
	require.Contains(t, notes, "§ Unsupported scenarios, l.47")
}
