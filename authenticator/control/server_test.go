package control

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/stretchr/testify/require"
)

// serveForTest runs Serve with lim on a loopback port and returns its address.
func serveForTest(t *testing.T, lim Limits) (string, *emulator.Key) {
	t.Helper()
	k, err := emulator.Open(emulator.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = k.Close() })
	l, err := Listen("127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, k, Options{Limits: lim}) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return l.Addr().String(), k
}

// closedWithin reports whether the server closes c (a read returns EOF or a reset) before the
// bound; whatever the server answered first is drained.
func closedWithin(t *testing.T, c net.Conn, bound time.Duration) bool {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(bound)))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// TestServeCutsSlowAndIdleConnections is issue 9 item 4: a client that sends a body slowly, or
// its headers slowly, or keeps an idle keep-alive connection, is disconnected once the limit
// passes instead of holding the API; an oversized header is refused. (The limits are shortened
// here; the defaults are DefaultLimits.)
func TestServeCutsSlowAndIdleConnections(t *testing.T) {
	t.Parallel()
	lim := Limits{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: time.Second,
		Idle: 300 * time.Millisecond, MaxHeaderBytes: 1024, MaxConns: 8}
	addr, k := serveForTest(t, lim)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	const bound = 10 * time.Second // far above the limits: only a hang reaches it

	t.Run("slow body", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "PATCH /knobs HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sil", addr)
		require.NoError(t, err)
		require.True(t, closedWithin(t, c, bound), "a body that never completes is cut")
		require.Zero(t, k.Knobs().Silent)
	})
	t.Run("slow headers", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "GET /state HTTP/1.1\r\nHost: %s\r\n", addr) // never ends the headers
		require.NoError(t, err)
		require.True(t, closedWithin(t, c, bound))
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "GET /knobs HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.False(t, resp.Close, "the connection is kept alive after the answer")
		require.True(t, closedWithin(t, c, bound), "and closed once idle")
	})
	t.Run("oversized header", func(t *testing.T) {
		c := dial()
		_, err := fmt.Fprintf(c, "GET /state HTTP/1.1\r\nHost: %s\r\nX-Pad: %s\r\n\r\n", addr, strings.Repeat("a", 8<<10))
		require.NoError(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		_ = resp.Body.Close()
		require.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
}

// TestServeConnectionLimit: past MaxConns, a new connection waits until one is closed; the held
// connections cannot take the API away from everyone for longer than the limits allow.
func TestServeConnectionLimit(t *testing.T) {
	t.Parallel()
	addr, _ := serveForTest(t, Limits{ReadHeader: time.Minute, Read: time.Minute, Idle: time.Minute, MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		_, err = fmt.Fprintf(c, "GET /state HTTP/1.1\r\nHost: %s\r\n", addr) // holds its slot
		require.NoError(t, err)
		held = append(held, c)
	}
	get := func(timeout time.Duration) error {
		cl := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Get("http://" + addr + "/knobs")
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	require.Error(t, get(300*time.Millisecond), "a third connection is not served while two are held")
	require.NoError(t, held[0].Close())
	require.NoError(t, get(10*time.Second), "a slot freed serves the next")
}

func TestReadTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), mode))
		require.NoError(t, os.Chmod(p, mode))
		return p
	}
	tok, err := ReadTokenFile(write("ok", "  s3cr3t-token-0123456789\n", 0o600))
	require.NoError(t, err)
	require.Equal(t, "s3cr3t-token-0123456789", string(tok))
	for name, tc := range map[string]struct {
		body string
		mode os.FileMode
		want string
	}{
		"short":    {"short", 0o600, "at least 16"},
		"readable": {"s3cr3t-token-0123456789", 0o644, "lets others read it"},
		"spaces":   {"two words here 0123456789", 0o600, "one line"},
		"empty":    {"\n", 0o600, "at least 16"},
	} {
		_, err := ReadTokenFile(write(name, tc.body, tc.mode))
		require.ErrorContains(t, err, tc.want, name)
	}
	_, err = ReadTokenFile(dir)
	require.ErrorContains(t, err, "not a regular file")
	_, err = ReadTokenFile(filepath.Join(dir, "absent"))
	require.Error(t, err)
}

func TestListenLoopbackOrUnixOnly(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"0.0.0.0:0", "[::]:0", ":0", "192.0.2.1:80", "example.com:80", "tcp:0.0.0.0:0", "nonsense"} {
		_, err := Listen(bad)
		require.Error(t, err, bad)
	}
	for _, good := range []string{"127.0.0.1:0", "tcp:127.0.0.1:0"} {
		l, err := Listen(good)
		require.NoError(t, err, good)
		require.NoError(t, l.Close())
	}
}
