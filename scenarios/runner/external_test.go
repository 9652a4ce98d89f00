package runner

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

// TestExternalKeyOverSocket serves an emulated key over a report socket with its control API, as
// `fidolab serve` does, and runs cases on it: one at a time, the key replugged and reset between.
func TestExternalKeyOverSocket(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	sock := filepath.Join(t.TempDir(), "key.sock")
	l, err := socket.Listen("unix:" + sock)
	require.NoError(t, err)
	go func() { _ = socket.Serve(ctx, l, k.Device) }()
	cl, err := control.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: control.Handler(k)}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Close() })

	keys, err := External("socket:" + sock + ",control=" + cl.Addr().String())
	require.NoError(t, err)
	require.True(t, keys.Sequential())
	cat := loadTemp(t, fakeCatalog)
	// two-accounts registers alice and bob on both of its cases: without the reset between them
	// the second case would find four credentials and a PIN already set.
	run, err := Run(ctx, cat, Options{Target: fakeTarget{}, Keys: keys, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Equal(t, "socket:"+sock+",control="+cl.Addr().String(), run.Key)
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
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sock := filepath.Join(t.TempDir(), "key.sock")
	l, err := socket.Listen("unix:" + sock)
	require.NoError(t, err)
	go func() { _ = socket.Serve(ctx, l, k.Device) }()
	cl, err := control.Listen("127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: control.Handler(k)}
	go func() { _ = srv.Serve(cl) }()
	t.Cleanup(func() { _ = srv.Close() })

	keys, err := External("socket:" + sock + ",control=" + cl.Addr().String())
	require.NoError(t, err)
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	run, err := Run(ctx, cat, Options{Keys: keys, Filter: "re:^(sign-in-lock-screen|offline-after-replug)$ windows:11-24H2"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 2)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s %s\n%s", c.ID, c.Version, c.Error, c.KeyCause, describe(c))
	}
}
