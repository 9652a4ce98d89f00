package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCheckLocal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hostport string
		remote   bool
	}{
		{"127.0.0.1:0", false},
		{"127.0.0.2:0", false},
		{"[::1]:0", false},
		{"localhost:0", false},
		{"0.0.0.0:0", true},
		{":0", true},
		{"[::]:0", true},
		{"192.0.2.10:0", true},
		{"[2001:db8::1]:0", true},
		{"key.example:0", true},
	} {
		remote, err := CheckLocal(tc.hostport, false)
		require.Equal(t, tc.remote, remote, tc.hostport)
		if tc.remote {
			require.ErrorIs(t, err, ErrRemote, tc.hostport)
			require.ErrorContains(t, err, "--allow-remote", tc.hostport)
		} else {
			require.NoError(t, err, tc.hostport)
		}
		remote, err = CheckLocal(tc.hostport, true)
		require.NoError(t, err, tc.hostport)
		require.Equal(t, tc.remote, remote, "allowing remote hosts still reports them, for the warning")
	}
	_, err := CheckLocal("no-port", false)
	require.Error(t, err)
}

func TestListenTCPLoopbackOnlyUnlessAllowed(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"tcp:0.0.0.0:0", "tcp::0", "tcp:[::]:0"} {
		var warn bytes.Buffer
		_, err := Listen(addr, Options{Warn: &warn})
		require.ErrorIs(t, err, ErrRemote, addr)
		require.Empty(t, warn.String())
	}

	var warn bytes.Buffer
	l, err := Listen("tcp:0.0.0.0:0", Options{AllowRemote: true, Warn: &warn})
	require.NoError(t, err)
	defer l.Close()
	require.True(t, l.Addr().(*net.TCPAddr).IP.IsUnspecified())
	require.Contains(t, warn.String(), "WARNING: --allow-remote")
	require.Contains(t, warn.String(), "without authentication")

	warn.Reset()
	l2, err := Listen("tcp:127.0.0.1:0", Options{AllowRemote: true, Warn: &warn})
	require.NoError(t, err)
	defer l2.Close()
	require.Empty(t, warn.String(), "no warning for a loopback address")
}

// TestUnixSocketPrivateFromTheStart runs the check in a child process: the umask is per process,
// and 000 would leak into every other test that creates a file.
func TestUnixSocketPrivateFromTheStart(t *testing.T) {
	if os.Getenv("FIDOLAB_UMASK_CHILD") == "1" {
		privateFromTheStart(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnixSocketPrivateFromTheStart$", "-test.v")
	cmd.Env = append(os.Environ(), "FIDOLAB_UMASK_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestUnixSocketPrivateFromTheStart")
}

// privateFromTheStart starts and stops a listener many times with umask 000 while a watcher looks
// at the directory as fast as it can. Every entry it ever sees must be private: the socket at
// its path with mode 0600, or the binding directory with mode 0700. Creating the socket at its
// path and chmod-ing it afterwards (mode 0777 for a moment) fails this.
func privateFromTheStart(t *testing.T) {
	syscall.Umask(0)
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "key.sock")
	var (
		stop     atomic.Bool
		seen     atomic.Int64
		mu       sync.Mutex
		exposure []string
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				fi, err := os.Lstat(filepath.Join(dir, e.Name()))
				if err != nil {
					continue // gone again
				}
				seen.Add(1)
				want := os.FileMode(0o600)
				if fi.IsDir() {
					want = 0o700
				}
				if fi.Mode().Perm() != want {
					mu.Lock()
					if len(exposure) < 5 {
						exposure = append(exposure, fmt.Sprintf("%s %v", e.Name(), fi.Mode()))
					}
					mu.Unlock()
				}
			}
		}
	}()
	for range 300 {
		l, err := Listen("unix:"+path, Options{})
		require.NoError(t, err)
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "mode right after Listen")
		require.NotZero(t, fi.Mode()&fs.ModeSocket)
		c, err := net.Dial("unix", path)
		require.NoError(t, err, "the socket answers at its path")
		c.Close()
		require.NoError(t, l.Close())
	}
	stop.Store(true)
	<-done
	require.Empty(t, exposure, "entries seen with a wider mode")
	require.Positive(t, seen.Load(), "the watcher saw the socket at all")
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "no socket or binding directory left behind")
}

func TestUnixLiveSocketIsNotTakenOver(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.sock")
	first, err := Listen("unix:"+path, Options{})
	require.NoError(t, err)
	defer first.Close()
	go func() {
		for {
			c, err := first.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("first"))
			c.Close()
		}
	}()

	_, err = Listen("unix:"+path, Options{})
	require.ErrorIs(t, err, ErrInUse)
	require.EqualError(t, err, path+" is in use by another key (stop that one first, or choose another path)")
	_, err = Listen("unix:"+path, Options{What: "usbredir server"})
	require.ErrorContains(t, err, "in use by another usbredir server")

	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	b := make([]byte, 5)
	_, err = c.Read(b)
	require.NoError(t, err)
	require.Equal(t, "first", string(b), "the first server still owns its path")
	c.Close()
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "the refused listener left nothing behind")

	require.NoError(t, first.Close())
	_, err = os.Lstat(path)
	require.ErrorIs(t, err, fs.ErrNotExist, "Close removes its own socket")
}

func TestUnixStaleSocketIsReplaced(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	stale.SetUnlinkOnClose(false)
	require.NoError(t, stale.Close()) // what a crashed server leaves: a socket file nobody answers on
	l, err := Listen("unix:"+path, Options{})
	require.NoError(t, err)
	defer l.Close()
	require.Equal(t, path, l.Addr().String())
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
		}
	}()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	c.Close()
}

func TestUnixNonSocketIsLeftAlone(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(path, []byte("keep me"), 0o600))
	_, err := Listen("unix:"+path, Options{})
	require.ErrorContains(t, err, "not a socket")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "keep me", string(b))
}

// A server whose socket was replaced (someone removed the file and started another server) must
// not delete its successor's socket when it stops.
func TestCloseLeavesASuccessorsSocket(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key.sock")
	old, err := Listen("unix:"+path, Options{})
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	successor, err := Listen("unix:"+path, Options{})
	require.NoError(t, err)
	defer successor.Close()
	require.NoError(t, old.Close())
	fi, err := os.Lstat(path)
	require.NoError(t, err, "the successor's socket is still there")
	require.NotZero(t, fi.Mode()&fs.ModeSocket)
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	accept := func(errno syscall.Errno) error {
		return &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", errno)}
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		require.True(t, Temporary(accept(errno)), errno.Error())
	}
	require.False(t, Temporary(nil))
	require.False(t, Temporary(net.ErrClosed))
	require.False(t, Temporary(fmt.Errorf("accept: %w", net.ErrClosed)))
	require.False(t, Temporary(accept(syscall.EBADF)))
	require.False(t, Temporary(errors.New("something else")))
}

func TestBackoffDoublesToACap(t *testing.T) {
	t.Parallel()
	var asked []time.Duration
	now := func(d time.Duration) <-chan time.Time {
		asked = append(asked, d)
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	}
	b := Backoff{After: now}
	for range 10 {
		_, ok := b.Wait(context.Background())
		require.True(t, ok)
	}
	ms := time.Millisecond
	require.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms, time.Second, time.Second}, asked)
	b.Reset()
	d, _ := b.Wait(context.Background())
	require.Equal(t, MinBackoff, d)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	never := Backoff{After: func(time.Duration) <-chan time.Time { return nil }}
	_, ok := never.Wait(ctx)
	require.False(t, ok, "an ended context stops the wait")
}

func TestParseAddr(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "unix:", "udp:127.0.0.1:1", "/run/x.sock", "tcp"} {
		_, _, err := ParseAddr(bad)
		require.Error(t, err, bad)
		require.True(t, strings.Contains(err.Error(), "unix:PATH or tcp:HOST:PORT"))
	}
}
