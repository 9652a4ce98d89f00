package socket

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/listener"
	"github.com/stretchr/testify/require"
)

type echo struct{}

func (echo) HandleCBOR(_ context.Context, req []byte, _ func(byte)) []byte {
	return append([]byte{0}, req...)
}
func (echo) HandleMSG(_ context.Context, apdu []byte) []byte { return append(apdu, 0x90, 0) }
func (echo) Wink()                                           {}

func newDevice() *ctaphid.Device {
	return ctaphid.NewDevice(echo{}, ctaphid.DeviceInfo{Major: 1, Capabilities: ctaphid.CapCBOR | ctaphid.CapWink})
}

// serve starts Serve on addr and returns the listener address and a stop function that checks
// Serve's result.
func serve(t *testing.T, addr string) (net.Addr, func()) {
	t.Helper()
	l, err := Listen(addr)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, newDevice()) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(2 * time.Second):
			t.Fatal("Serve did not return after its context ended")
		}
	}
	t.Cleanup(func() { cancel() })
	return l.Addr(), stop
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, network, address string
		ok                   bool
	}{
		{"unix:/run/fidolab.sock", "unix", "/run/fidolab.sock", true},
		{"tcp:127.0.0.1:0", "tcp", "127.0.0.1:0", true},
		{"tcp:[::1]:0", "tcp", "[::1]:0", true},
		{"unix:", "", "", false},
		{"udp:127.0.0.1:1", "", "", false},
		{"/run/fidolab.sock", "", "", false},
		{"", "", "", false},
	}
	for _, tc := range tests {
		n, a, err := parse(tc.in)
		if !tc.ok {
			require.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.network, n)
		require.Equal(t, tc.address, a)
	}
}

func TestUnixMaxPing(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.sock")

	// A stale socket left by a crashed server is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	require.NoError(t, stale.Close())
	_, err = os.Lstat(path)
	require.NoError(t, err)

	_, stop := serve(t, "unix:"+path)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	conn, err := Dial("unix:" + path)
	require.NoError(t, err)
	c := ctaphid.NewClient(conn)
	data := bytes.Repeat([]byte{0x5a, 0xa5, 0x01}, ctaphid.MaxMessageSize/3+1)[:ctaphid.MaxMessageSize]
	got, err := c.Ping(context.Background(), data)
	require.NoError(t, err)
	require.Equal(t, data, got)
	resp, err := c.CBOR(context.Background(), []byte{4})
	require.NoError(t, err)
	require.Equal(t, []byte{0, 4}, resp)

	stop()
	_, err = conn.ReadReport(context.Background())
	require.Error(t, err, "Serve closes its connections on shutdown")
	require.NoError(t, conn.Close())
}

func TestListenRefusesNonSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notasocket")
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o644))
	_, err := Listen("unix:" + path)
	require.ErrorContains(t, err, "not a socket")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "keep me", string(b))
}

func TestTCP(t *testing.T) {
	t.Parallel()
	addr, stop := serve(t, "tcp:127.0.0.1:0")
	defer stop()
	conn, err := Dial("tcp:" + addr.String())
	require.NoError(t, err)
	defer conn.Close()
	c := ctaphid.NewClient(conn)
	require.NoError(t, c.Wink(context.Background()))
	got, err := c.Ping(context.Background(), []byte("tcp"))
	require.NoError(t, err)
	require.Equal(t, []byte("tcp"), got)
}

func TestPartialReportAtEOFIsDropped(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.sock")
	_, stop := serve(t, "unix:"+path)
	defer stop()
	raw, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer raw.Close()
	init, err := ctaphid.Fragment(ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{1, 2, 3, 4, 5, 6, 7, 8})
	require.NoError(t, err)
	_, err = raw.Write(init[0][:])
	require.NoError(t, err)
	var resp [ctaphid.ReportSize]byte
	_, err = io.ReadFull(raw, resp[:])
	require.NoError(t, err)
	require.Equal(t, ctaphid.CmdInit, resp[4])
	require.Equal(t, []byte{1, 2, 3, 4, 5, 6, 7, 8}, resp[7:15])

	// 30 bytes of a second INIT, then EOF: the device must not answer it.
	_, err = raw.Write(init[0][:30])
	require.NoError(t, err)
	require.NoError(t, raw.(*net.UnixConn).CloseWrite())
	require.NoError(t, raw.SetReadDeadline(time.Now().Add(2*time.Second)))
	n, err := io.ReadFull(raw, resp[:])
	require.Equal(t, 0, n)
	require.ErrorIs(t, err, io.EOF)
}

func TestReadReportKeepsAlignment(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer b.Close()
	c := &Conn{c: a}
	defer c.Close()
	want := bytes.Repeat([]byte{0xc3}, 2*ctaphid.ReportSize)
	want[ctaphid.ReportSize] = 0x11
	more := make(chan struct{})
	go func() {
		_, _ = b.Write(want[:30])
		<-more
		_, _ = b.Write(want[30:])
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Millisecond)
	defer cancel()
	_, err := c.ReadReport(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	close(more)
	r1, err := c.ReadReport(context.Background())
	require.NoError(t, err)
	require.Equal(t, want[:ctaphid.ReportSize], r1)
	r2, err := c.ReadReport(context.Background())
	require.NoError(t, err)
	require.Equal(t, want[ctaphid.ReportSize:], r2)

	// Cancellation, not only deadlines, interrupts a read.
	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	_, err = c.ReadReport(ctx2)
	require.True(t, errors.Is(err, context.Canceled), "got %v", err)
	require.ErrorIs(t, c.WriteReport(context.Background(), make([]byte, 10)), ctaphid.ErrReportSize)
}

// countingConn counts Write calls, each one system call on a real socket.
type countingConn struct {
	net.Conn
	writes *atomic.Int32
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

type countingListener struct {
	net.Listener
	writes *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

// TestOneWritePerMessage: a whole message goes out with one write in each direction (not one
// per 64-byte report), and a report split across reads or several reports in one read are
// taken apart correctly.
func TestOneWritePerMessage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.sock")
	l, err := Listen("unix:" + path)
	require.NoError(t, err)
	var serverWrites, clientWrites atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, countingListener{l, &serverWrites}, newDevice()) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	raw, err := net.Dial("unix", path)
	require.NoError(t, err)
	conn := &Conn{c: countingConn{raw, &clientWrites}}
	defer conn.Close()
	c := ctaphid.NewClient(conn)
	_, err = c.Init(context.Background())
	require.NoError(t, err)
	serverWrites.Store(0)
	clientWrites.Store(0)
	data := bytes.Repeat([]byte{7}, 1000) // 18 reports each way
	got, err := c.Ping(context.Background(), data)
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.EqualValues(t, 1, clientWrites.Load(), "the request in one write")
	require.EqualValues(t, 1, serverWrites.Load(), "the answer in one write")

	// Reports split across writes, and two messages in one write, as a raw host may send them.
	initA, _ := ctaphid.Fragment(ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{1, 1, 1, 1, 1, 1, 1, 1})
	initB, _ := ctaphid.Fragment(ctaphid.BroadcastCID, ctaphid.CmdInit, []byte{2, 2, 2, 2, 2, 2, 2, 2})
	stream := append(append([]byte{}, initA[0][:]...), initB[0][:]...)
	_, err = raw.Write(stream[:10])
	require.NoError(t, err)
	_, err = raw.Write(stream[10:])
	require.NoError(t, err)
	for _, nonce := range []byte{1, 2} {
		r, err := conn.ReadReport(context.Background())
		require.NoError(t, err)
		require.Equal(t, ctaphid.CmdInit, r[4])
		require.Equal(t, nonce, r[7])
	}
}

func TestListenTCPIsLoopbackOnlyUnlessAllowed(t *testing.T) {
	t.Parallel()
	_, err := Listen("tcp:0.0.0.0:0")
	require.ErrorIs(t, err, listener.ErrRemote)
	require.ErrorContains(t, err, "--allow-remote")
	_, err = Listen("tcp::0")
	require.ErrorIs(t, err, listener.ErrRemote, "an empty host is every interface")

	var warn bytes.Buffer
	l, err := Listen("tcp:0.0.0.0:0", AllowRemote(&warn))
	require.NoError(t, err)
	defer l.Close()
	require.Contains(t, warn.String(), "WARNING: --allow-remote")
}

func TestListenRefusesALiveKeysPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.sock")
	_, stop := serve(t, "unix:"+path)
	defer stop()
	_, err := Listen("unix:" + path)
	require.ErrorIs(t, err, listener.ErrInUse)
	require.ErrorContains(t, err, path+" is in use by another key")
	conn, err := Dial("unix:" + path)
	require.NoError(t, err)
	defer conn.Close()
	got, err := ctaphid.NewClient(conn).Ping(context.Background(), []byte("mine"))
	require.NoError(t, err, "the first key still answers on its path")
	require.Equal(t, []byte("mine"), got)
}
