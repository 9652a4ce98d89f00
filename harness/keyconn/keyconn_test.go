package keyconn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/stretchr/testify/require"
)

func TestOpenSpecs(t *testing.T) {
	t.Parallel()
	k, err := Open("persona:ctap20")
	require.NoError(t, err)
	require.Equal(t, "in-process persona ctap20", k.Describe())
	require.True(t, CanReplug(k) && Unattended(k))
	require.NoError(t, k.Close())

	k, err = Open("socket:/tmp/x.sock,control=127.0.0.1:9")
	require.NoError(t, err)
	require.Equal(t, "socket unix:/tmp/x.sock (control 127.0.0.1:9)", k.Describe())
	require.True(t, CanReplug(k))
	k, err = Open("socket:tcp:127.0.0.1:1")
	require.NoError(t, err)
	require.False(t, CanReplug(k), "no control API, nobody to replug it")
	require.ErrorIs(t, k.(Replugger).Replug(context.Background()), ErrNoReplug)

	for _, bad := range []string{"nonsense", "floppy:a", "socket:/x,power=1"} {
		_, err := Open(bad)
		require.ErrorIs(t, err, ErrUsage, bad)
	}
	_, err = Open("persona:no-such-persona")
	require.Error(t, err)
	require.False(t, errors.Is(err, ErrUsage))
}

// TestEmulatedReplugIsAPowerUp: a replug opens the reset window again, on the key's own clock.
func TestEmulatedReplugIsAPowerUp(t *testing.T) {
	t.Parallel()
	k, err := Open("persona:default")
	require.NoError(t, err)
	defer k.Close()
	ctx := context.Background()
	e := k.(*Emulated)
	e.Advance(11 * time.Second)
	c, _, _, conn, err := Client(ctx, k)
	require.NoError(t, err)
	require.ErrorIs(t, c.Reset(ctx), ctap.ErrNotAllowed)
	_ = conn.Close()
	require.NoError(t, e.Replug(ctx))
	c, _, _, conn, err = Client(ctx, k)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, c.Reset(ctx))
	hid, ok := e.Identity()
	require.True(t, ok)
	require.Equal(t, uint16(0xf1d0), hid.ProductID)
}

// TestSocketReplugThroughControlAPI: a served key is replugged through its control API.
func TestSocketReplugThroughControlAPI(t *testing.T) {
	t.Parallel()
	ek, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	defer ek.Close()
	path := filepath.Join(t.TempDir(), "k.sock")
	l, err := socket.Listen("unix:" + path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = socket.Serve(ctx, l, ek.Device) }()
	srv := httptest.NewServer(control.Handler(ek))
	defer srv.Close()
	k, err := Open("socket:" + path + ",control=" + strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	var plugs []bool
	stop := ek.WatchPlug(func(on bool) { plugs = append(plugs, on) })
	defer stop()
	require.NoError(t, k.(Replugger).Replug(ctx))
	require.Equal(t, []bool{false, true}, plugs)
	c, _, _, conn, err := Client(ctx, k)
	require.NoError(t, err)
	defer conn.Close()
	_, err = c.GetInfo(ctx)
	require.NoError(t, err)

	nf := httptest.NewServer(http.NotFoundHandler())
	defer nf.Close()
	bad, err := Open("socket:" + path + ",control=" + strings.TrimPrefix(nf.URL, "http://"))
	require.NoError(t, err)
	require.ErrorContains(t, bad.(Replugger).Replug(ctx), "answered 404")
}
