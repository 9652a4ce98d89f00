package usb

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/stretchr/testify/require"
)

// countingConn is the one real connection a Hub holds, here a port of an emulated key.
type countingConn struct {
	ctaphid.ReportConn
	closed *atomic.Int32
}

func (c countingConn) Close() error { c.closed.Add(1); return c.ReportConn.Close() }

func TestHubSharesOneConnection(t *testing.T) {
	t.Parallel()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	var opened, closed atomic.Int32
	h := NewHub(func(context.Context) (ctaphid.ReportConn, error) {
		opened.Add(1)
		return countingConn{k.Connect(), &closed}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Two clients hold one claimed interface open, each with its own channel, taking turns (a key
	// answers CHANNEL_BUSY to a second channel while it serves one, over hidraw as here).
	views := make([]ctaphid.ReportConn, 3)
	for i := range views {
		views[i], err = h.Dial(ctx)
		require.NoError(t, err)
	}
	hids := []*ctaphid.Client{ctaphid.NewClient(views[0]), ctaphid.NewClient(views[1])}
	for _, hid := range hids {
		_, err := hid.Init(ctx)
		require.NoError(t, err)
	}
	require.NotEqual(t, hids[0].CID(), hids[1].CID())
	for i := range 6 {
		_, err := client.New(hids[i%2]).GetInfo(ctx)
		require.NoError(t, err, "turn %d", i)
	}
	require.Equal(t, int32(1), opened.Load(), "one real connection for every view")
	require.NoError(t, views[0].Close())
	require.NoError(t, views[1].Close())
	require.Zero(t, closed.Load(), "a view is still open (the third, which never read: it did not stall the others)")
	require.NoError(t, views[2].Close())
	require.Equal(t, int32(1), closed.Load(), "the last view closed the real connection")
	_, err = views[2].ReadReport(ctx)
	require.ErrorIs(t, err, ErrHubClosed)
	require.NoError(t, views[2].Close(), "twice is harmless")

	v, err := h.Dial(ctx)
	require.NoError(t, err)
	require.Equal(t, int32(2), opened.Load(), "opened again after the last view closed")
	require.NoError(t, v.Close())
}

// goneConn fails its reads as an unplugged key does.
type goneConn struct{ closed chan struct{} }

func (goneConn) WriteReport(context.Context, []byte) error { return nil }
func (goneConn) ReadReport(context.Context) ([]byte, error) {
	return nil, ErrGone
}
func (g goneConn) Close() error { close(g.closed); return nil }

func TestHubEndsViewsWhenTheKeyGoes(t *testing.T) {
	t.Parallel()
	g := goneConn{closed: make(chan struct{})}
	opens := 0
	h := NewHub(func(context.Context) (ctaphid.ReportConn, error) {
		opens++
		if opens > 1 {
			return nil, errors.New("not plugged in")
		}
		return g, nil
	})
	ctx := context.Background()
	v, err := h.Dial(ctx)
	require.NoError(t, err)
	_, err = v.ReadReport(ctx)
	require.ErrorIs(t, err, ErrGone)
	require.ErrorIs(t, v.WriteReport(ctx, make([]byte, 64)), ErrGone)
	<-g.closed
	_, err = h.Dial(ctx)
	require.ErrorContains(t, err, "not plugged in", "the next Dial opens anew")
	require.NoError(t, v.Close())
}
