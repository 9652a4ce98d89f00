package ctaphid_test

import (
	"bytes"
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
	"github.com/stretchr/testify/require"
)

func TestClientPingSizes(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	c := ctaphid.NewClient(inproc.Connect(d))
	for _, n := range []int{0, 1, 57, 58, 116, 117, 1000, ctaphid.MaxMessageSize} {
		data := bytes.Repeat([]byte{byte(n)}, n)
		got, err := c.Ping(context.Background(), data)
		require.NoError(t, err, "size %d", n)
		require.Equal(t, data, got)
	}
	_, err := c.Ping(context.Background(), make([]byte, ctaphid.MaxMessageSize+1))
	require.ErrorIs(t, err, ctaphid.ErrMessageTooLarge)
}

// TestClientIgnoresOtherChannels checks that a client takes only its own channel's reports, as it must
// on hidraw, where every reader gets every input report.
func TestClientIgnoresOtherChannels(t *testing.T) {
	t.Parallel()
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	conn := &noisyConn{ReportConn: inproc.Connect(d)}
	c := ctaphid.NewClient(conn)
	_, err := c.Init(context.Background())
	require.NoError(t, err)
	conn.noise = true
	got, err := c.CBOR(context.Background(), bytes.Repeat([]byte{7}, 300))
	require.NoError(t, err)
	require.Equal(t, append([]byte{0}, bytes.Repeat([]byte{7}, 300)...), got)
}

// noisyConn injects a report on a foreign channel before every real one.
type noisyConn struct {
	ctaphid.ReportConn
	noise bool
	flip  bool
}

func (n *noisyConn) ReadReport(ctx context.Context) ([]byte, error) {
	if n.noise {
		n.flip = !n.flip
		if n.flip {
			return rawReport(0x0badcafe, ctaphid.CmdCBOR, 0, 1, 0x2D), nil
		}
	}
	return n.ReportConn.ReadReport(ctx)
}

func TestClientContextOnNonCBOR(t *testing.T) {
	t.Parallel()
	release, returned := make(chan struct{}), make(chan struct{})
	fh := &fakeHandler{msg: func(ctx context.Context, apdu []byte) []byte {
		defer close(returned)
		<-release
		return []byte{0x90, 0}
	}}
	d := ctaphid.NewDevice(fh, testInfo)
	c := ctaphid.NewClient(inproc.Connect(d))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := c.Msg(ctx, []byte{0, 1, 0, 0})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	old := c.CID()
	close(release)
	// The abandoned channel is replaced, so its late answer cannot be taken for the next one. The device
	// frees its busy slot just after the handler returns, so a try in between is refused with
	// CHANNEL_BUSY.
	<-returned
	var got []byte
	var err2 error
	for range 1000 {
		if got, err2 = c.Ping(context.Background(), []byte("x")); !errors.Is(err2, ctaphid.ErrChannelBusy) {
			break
		}
	}
	require.NoError(t, err2)
	require.Equal(t, []byte("x"), got)
	require.NotEqual(t, old, c.CID())
}

// TestNoGoroutineLeak is not parallel, so only its own goroutines are counted.
func TestNoGoroutineLeak(t *testing.T) {
	base := runtime.NumGoroutine()
	d := ctaphid.NewDevice(&fakeHandler{cbor: waitCancel(nil)}, testInfo, ctaphid.WithMessageTimeout(20*time.Millisecond))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := inproc.Connect(d)
			defer conn.Close()
			c := ctaphid.NewClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
			defer cancel()
			_, _ = c.CBOR(ctx, []byte{2})
			_, _ = c.Ping(context.Background(), make([]byte, 300))
			_ = conn.WriteReport(context.Background(), rawReport(c.CID(), ctaphid.CmdPing, 0, 200))
		}()
	}
	wg.Wait()
	d.PowerCycle()
	// Polled by hand: testify's Eventually runs its condition on a goroutine of its own.
	wall := clock.Real{} // worker goroutines leave after workerIdle of wall time
	deadline := wall.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > base && wall.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines: %d before, %d after:\n%s", base, n, buf[:runtime.Stack(buf, true)])
	}
}

// BenchmarkRoundTrip measures one 64-byte CTAPHID_CBOR echo through Client and inproc: two request
// and two response reports, the whole transport path of a request.
func BenchmarkRoundTrip(b *testing.B) {
	d := ctaphid.NewDevice(&fakeHandler{}, testInfo)
	conn := inproc.Connect(d)
	defer conn.Close()
	c := ctaphid.NewClient(conn)
	ctx := context.Background()
	if _, err := c.Init(ctx); err != nil {
		b.Fatal(err)
	}
	req := bytes.Repeat([]byte{0xA5}, 64)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := c.CBOR(ctx, req)
		if err != nil || len(resp) != 65 {
			b.Fatalf("resp %d bytes, err %v", len(resp), err)
		}
	}
}
