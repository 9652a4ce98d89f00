package probe

import (
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/stretchr/testify/require"
)

// emulated is a fresh key of persona p whose simulated user touches it 800 ms after being asked,
// as a person does (so keepalives can be seen), on a virtual clock.
func emulated(t *testing.T, p *persona.Persona) *keyconn.Emulated {
	t.Helper()
	k, err := keyconn.NewEmulated(p, &keyconn.EmulatedOptions{User: user.Delayed{After: 800 * time.Millisecond, Answer: user.Yes}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	return k
}
