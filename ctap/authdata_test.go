package ctap

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlagNames(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		f    byte
		want string
	}{{0, "none"}, {FlagUP, "UP"}, {FlagUP | FlagUV | FlagAT, "UP|UV|AT"}, {FlagED | FlagBE | FlagBS, "BE|BS|ED"}} {
		require.Equal(t, tc.want, FlagNames(tc.f))
	}
}
