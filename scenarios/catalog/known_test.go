package catalog

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKnownFailures: every field report of the embedded catalog with signatures becomes one
// known failure with all of them and its report; a hand-built catalog with a bad signature is
// an error, not a failure quietly matched by fewer signatures.
func TestKnownFailures(t *testing.T) {
	t.Parallel()
	cat, err := Embedded()
	require.NoError(t, err)
	known, reports, err := cat.KnownFailures()
	require.NoError(t, err)
	want := 0
	for _, s := range cat.Scenarios {
		if s.Report != nil && len(s.Report.Match) > 0 {
			want++
			require.Same(t, s.Report, reports[s.ID], s.ID)
		}
	}
	require.NotZero(t, want)
	require.Len(t, known, want)
	for _, k := range known {
		require.Len(t, k.Signatures, len(reports[k.ID].Match), k.ID)
	}

	bad := &Catalog{Scenarios: []*Scenario{{ID: "x", Report: &Report{Match: []string{"(("}}}}}
	_, _, err = bad.KnownFailures()
	require.ErrorContains(t, err, "x: report signature")
}
