package peertest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// recordTB captures how Require ends a test.
type recordTB struct {
	testing.TB
	fatal, skip bool
}

func (r *recordTB) Helper()               {}
func (r *recordTB) Fatalf(string, ...any) { r.fatal = true }
func (r *recordTB) Skipf(string, ...any)  { r.skip = true }

func TestRequire(t *testing.T) {
	missing := errors.New("gcc not found")
	for _, tc := range []struct {
		ci          string
		err         error
		fatal, skip bool
	}{
		{"true", missing, true, false},
		{"", missing, false, true},
		{"1", missing, false, true}, // only CI=true makes a missing peer fatal
		{"true", nil, false, false},
		{"", nil, false, false},
	} {
		t.Setenv("CI", tc.ci)
		r := &recordTB{TB: t}
		Require(r, "x", tc.err)
		require.Equal(t, tc.fatal, r.fatal, "CI=%q err=%v", tc.ci, tc.err)
		require.Equal(t, tc.skip, r.skip, "CI=%q err=%v", tc.ci, tc.err)
	}
}
