package ctap

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// An unnamed fingerprint still carries templateFriendlyName: python-fido2 0.9.1's
// enumerate_enrollments reads the key unconditionally.
func TestTemplateInfoAlwaysHasName(t *testing.T) {
	b, err := Marshal(TemplateInfo{ID: []byte{1, 2}})
	require.NoError(t, err)
	var m map[int]any
	require.NoError(t, Unmarshal(b, &m))
	require.Contains(t, m, 2)
	require.Equal(t, "", m[2])
}
