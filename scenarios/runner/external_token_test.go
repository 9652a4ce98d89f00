package runner

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

// TestExternalKeyControlToken: a control API that wants a bearer token (fidolab serve
// --control-token) is reached with ",token=FILE", over TCP or a unix socket (",control=unix:PATH");
// without the token the replug is refused and the runner says so.
func TestExternalKeyControlToken(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	dir := t.TempDir()
	sock := filepath.Join(dir, "key.sock")
	l, err := socket.Listen("unix:" + sock)
	require.NoError(t, err)
	go func() { _ = socket.Serve(ctx, l, k.Device) }()

	const tok = "runner-token-0123456789"
	tokFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokFile, []byte(tok), 0o600))
	opts := control.Options{Token: []byte(tok)}
	tcp, err := control.Listen("127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = control.Serve(ctx, tcp, k, opts) }()
	unixPath := filepath.Join(dir, "control.sock")
	ul, err := net.Listen("unix", unixPath)
	require.NoError(t, err)
	go func() { _ = control.Serve(ctx, ul, k, opts) }()

	for _, ctl := range []string{tcp.Addr().String(), "unix:" + unixPath} {
		keys, err := External("socket:" + sock + ",control=" + ctl + ",token=" + tokFile)
		require.NoError(t, err)
		key, err := keys.Open(ctx, nil)
		require.NoError(t, err, "replug and reset with the token through %s", ctl)
		require.NoError(t, key.Close())

		keys, err = External("socket:" + sock + ",control=" + ctl)
		require.NoError(t, err)
		_, err = keys.Open(ctx, nil)
		require.ErrorContains(t, err, "401", "without the token through %s", ctl)
	}
	_, err = External("socket:" + sock + ",control=" + tcp.Addr().String() + ",token=" + filepath.Join(dir, "absent"))
	require.Error(t, err, "a token file that cannot be read is an error up front")
	_, err = External("socket:" + sock + ",token=" + tokFile)
	require.ErrorContains(t, err, "token= is for the control API")
	require.True(t, k.Plugged())
}
