package emulator

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

func TestStateFileRemembersPersona(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.state")
	c20, err := persona.Builtin("ctap20")
	require.NoError(t, err)
	k, err := Open(Options{Persona: c20, StatePath: path})
	require.NoError(t, err)
	require.NoError(t, k.Close())
	require.NoError(t, k.Close(), "Close is idempotent")

	k, err = Open(Options{StatePath: path})
	require.NoError(t, err, "no persona given: the recorded one")
	require.Equal(t, "ctap20", k.Persona.Name)
	st, err := k.Status()
	require.NoError(t, err)
	require.Equal(t, c20.AAGUID.String(), st.AAGUID)
	require.Equal(t, path, st.StatePath)
	require.NoError(t, k.Close())

	def, err := persona.Builtin("default")
	require.NoError(t, err)
	_, err = Open(Options{Persona: def, StatePath: path})
	require.ErrorContains(t, err, `created as persona "ctap20"`)
	require.NoError(t, CheckStateFile(path))
}

func TestUnplugDropsChannels(t *testing.T) {
	k, err := Open(Options{})
	require.NoError(t, err)
	defer k.Close()
	ctx := context.Background()
	hid := ctaphid.NewClient(k.Connect())
	_, err = hid.Init(ctx)
	require.NoError(t, err)
	_, err = hid.Ping(ctx, []byte("x"))
	require.NoError(t, err)
	require.NoError(t, k.SetPlugged(false))
	require.False(t, k.Plugged())
	require.NoError(t, k.SetPlugged(true))
	_, err = hid.Ping(ctx, []byte("x"))
	require.ErrorIs(t, err, ctaphid.ErrInvalidChannel)
}

func TestWatchPlugSeesEveryChange(t *testing.T) {
	t.Parallel()
	k, err := Open(Options{})
	require.NoError(t, err)
	var seen []bool
	stop := k.WatchPlug(func(on bool) { seen = append(seen, on) })
	require.NoError(t, k.SetPlugged(false))
	require.NoError(t, k.SetPlugged(true))
	require.NoError(t, k.Close())
	require.Equal(t, []bool{false, true, false}, seen, "unplug, replug, and close as an unplug")
	stop()
	require.NoError(t, k.SetPlugged(true))
	require.Len(t, seen, 3, "no call after stop")
}

// A state file whose recorded persona breaks a rule added since (here a negative reset window)
// is a clear error that says how to keep the key; the persona corrected, with the same name and
// AAGUID, replaces the record and the credentials stay.
func TestRecordedPersonaThatNoLongerValidates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.state")
	k, err := Open(Options{StatePath: path})
	require.NoError(t, err)
	old := *k.Persona // as an earlier fidolab, which took a negative window, recorded it
	old.Quirks.ResetWindowSeconds = -1
	require.NoError(t, savePersona(k.Store, &old))
	require.NoError(t, k.Close())

	_, err = Open(Options{StatePath: path})
	require.ErrorContains(t, err, "quirks.resetWindowSeconds: -1 is outside 0..3600")
	require.ErrorContains(t, err, "serve it once with --persona FILE")

	other, err := persona.Parse([]byte("base: default\nname: other\naaguid: 00112233-4455-6677-8899-aabbccddeeff\n"), "other.yaml")
	require.NoError(t, err)
	_, err = Open(Options{StatePath: path, Persona: other})
	require.ErrorContains(t, err, "resetWindowSeconds", "a different key is not a correction")

	def, err := persona.Builtin("default")
	require.NoError(t, err)
	k, err = Open(Options{StatePath: path, Persona: def})
	require.NoError(t, err)
	require.NoError(t, k.Close())
	k, err = Open(Options{StatePath: path})
	require.NoError(t, err, "the corrected persona was recorded")
	require.Equal(t, "default", k.Persona.Name)
	require.NoError(t, k.Close())
}
