package netserve

import (
	"context"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/transport/listener"
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

// flakyListener fails its first accepts with EMFILE, as a process at its file limit does, then
// hands out real connections.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestServeRetriesTemporaryAcceptErrors: running out of file descriptors for a moment must not end
// the server (issue 9 item 8, for every listening transport): it backs off and accepts again.
func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	t.Parallel()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := &flakyListener{Listener: inner}
	l.fails.Store(5)
	waits := 0
	now := make(chan time.Time)
	close(now) // every backoff wait ends at once; the test counts them instead of sleeping
	bo := &listener.Backoff{After: func(time.Duration) <-chan time.Time { waits++; return now }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveWith(ctx, "test", l, func(c net.Conn) { c.Close(); served <- struct{}{} }, bo)
	}()
	c, err := net.Dial("tcp", inner.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	select {
	case <-served:
	case err := <-done:
		t.Fatalf("server ended on a temporary accept error: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("connection not served")
	}
	require.Equal(t, 5, waits, "one backoff per failed accept")
	cancel()
	require.NoError(t, <-done)
}
