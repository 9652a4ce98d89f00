package netserve

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWriterKeepsOrderAndStopsOnError(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	w := NewWriter(a, 4)
	go func() {
		for i := range 1000 {
			w.Send([]byte{byte(i), byte(i >> 8)})
		}
	}()
	got := make([]byte, 2000)
	_, err := io.ReadFull(b, got)
	require.NoError(t, err)
	for i := range 1000 {
		require.Equal(t, []byte{byte(i), byte(i >> 8)}, got[2*i:2*i+2], "slice %d out of order", i)
	}
	b.Close() // the next write fails: the writer closes a and stops
	w.Send([]byte{1})
	require.Eventually(t, func() bool {
		_, err := a.Write([]byte{1})
		return err != nil
	}, 5*time.Second, 10*time.Millisecond)
	done := make(chan struct{})
	go func() {
		for range 100 {
			w.Send([]byte{2}) // never blocks once stopped
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Send blocked on a stopped writer")
	}
	w.Close()
}

func TestServeRunsEachConnectionAndStopsWithContext(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var served atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	release := make(chan struct{})
	go func() {
		done <- Serve(ctx, "test", l, func(c net.Conn) {
			served.Add(1)
			<-release
			c.Close()
		})
	}()
	for range 3 {
		c, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		defer c.Close()
	}
	require.Eventually(t, func() bool { return served.Load() == 3 }, 5*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case <-done:
		t.Fatal("Serve returned before its connections ended")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-done)
	_, err = net.Dial("tcp", l.Addr().String())
	require.Error(t, err, "the listener is closed")

	l2, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l2.Close()
	require.ErrorContains(t, Serve(context.Background(), "test", l2, func(net.Conn) {}), "test: accept:")
}
