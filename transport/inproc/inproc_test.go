package inproc

import (
	"context"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

type blocker struct{ started, cancelled chan struct{} }

func (b blocker) HandleCBOR(ctx context.Context, _ []byte, _ func(byte)) []byte {
	close(b.started)
	<-ctx.Done()
	close(b.cancelled)
	return []byte{0x2D}
}
func (blocker) HandleMSG(context.Context, []byte) []byte { return []byte{0x6D, 0} }
func (blocker) Wink()                                    {}

func TestConn(t *testing.T) {
	t.Parallel()
	b := blocker{started: make(chan struct{}), cancelled: make(chan struct{})}
	d := ctaphid.NewDevice(b, ctaphid.DeviceInfo{Capabilities: ctaphid.CapCBOR})
	conn := Connect(d)
	require.ErrorIs(t, conn.WriteReport(context.Background(), make([]byte, 65)), ctaphid.ErrReportSize)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := conn.ReadReport(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded, "an idle device sends nothing")

	c := ctaphid.NewClient(conn)
	msg, err := c.Msg(context.Background(), []byte{0, 9, 0, 0})
	require.NoError(t, err)
	require.Equal(t, []byte{0x6D, 0}, msg)

	// Closing the connection cancels its request, like a process closing hidraw.
	go func() { _, _ = c.CBOR(context.Background(), []byte{2}) }()
	<-b.started
	require.NoError(t, conn.Close())
	select {
	case <-b.cancelled:
	case <-time.After(time.Second):
		t.Fatal("Close did not cancel the request")
	}
	require.NoError(t, conn.Close(), "Close is idempotent")
	require.ErrorIs(t, conn.WriteReport(context.Background(), make([]byte, 64)), ErrClosed)
	_, err = conn.ReadReport(context.Background())
	require.ErrorIs(t, err, ErrClosed)
}

func TestReadReportAt(t *testing.T) {
	t.Parallel()
	v := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	d := ctaphid.NewDevice(blocker{}, ctaphid.DeviceInfo{Capabilities: ctaphid.CapCBOR}, ctaphid.WithClock(v))
	conn := Connect(d)
	defer conn.Close()
	reports, err := ctaphid.Fragment(ctaphid.BroadcastCID, ctaphid.CmdInit, make([]byte, 8))
	require.NoError(t, err)
	v.Advance(42 * time.Second)
	require.NoError(t, conn.WriteReport(context.Background(), reports[0][:]))
	r, at, err := conn.ReadReportAt(context.Background())
	require.NoError(t, err)
	require.Equal(t, ctaphid.CmdInit, r[4])
	require.Equal(t, v.Now(), at, "stamped with the device's clock when it answered")
}
