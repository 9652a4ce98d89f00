package runner

import (
	"context"
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
