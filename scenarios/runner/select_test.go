package runner

import (
	"context"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/stretchr/testify/require"
)

// Select chooses what Run runs: the same cases and the same scenarios left out.
func TestSelectIsWhatRunRuns(t *testing.T) {
	t.Parallel()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	nh, err := persona.Builtin("no-hmac-secret")
	require.NoError(t, err)
	for _, opts := range []Options{
		{Filter: "req-webauthn"},
		{Filter: "key-", Keys: InProcess(nh)},
		{Filter: "re:^no-such-case$"},
	} {
		cases, leftOut, err := Select(cat, opts)
		require.NoError(t, err)
		run, err := Run(context.Background(), cat, opts)
		require.NoError(t, err)
		require.Len(t, run.Cases, len(cases), opts.Filter)
		require.Equal(t, run.LeftOut, leftOut, opts.Filter)
	}
	_, _, err = Select(cat, Options{Filter: "re:("})
	require.Error(t, err)
}
