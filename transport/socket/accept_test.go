package socket

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/stretchr/testify/require"
)

// flakyListener fails Accept with EMFILE the next fails times a connection is waiting, as
// accept(2) does when the process is out of file descriptors, and then hands the connection over.
type flakyListener struct {
	net.Listener
	mu      sync.Mutex
	fails   int
	pending net.Conn
}

func (l *flakyListener) failNext(n int) {
	l.mu.Lock()
	l.fails = n
	l.mu.Unlock()
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.pending == nil {
		l.mu.Unlock()
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		l.pending = c
	}
	defer l.mu.Unlock()
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	c := l.pending
	l.pending = nil
	return c, nil
}

func ping(t *testing.T, conn ctaphid.ReportConn, data string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := ctaphid.NewClient(conn).Ping(ctx, []byte(data))
	require.NoError(t, err)
	require.Equal(t, data, string(got))
}

// syncLog is a slog destination tests read while the server writes.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeRetriesTemporaryAcceptErrors(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "k.sock")
	inner, err := Listen("unix:" + path)
	require.NoError(t, err)
	fl := &flakyListener{Listener: inner}
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	clock := func(d time.Duration) <-chan time.Time { // fires at once, remembers what was asked
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	}
	var logs syncLog
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, fl, newDevice(), withClock(clock), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	}()

	first, err := Dial("unix:" + path)
	require.NoError(t, err)
	defer first.Close()
	ping(t, first, "before")

	fl.failNext(12)
	second, err := Dial("unix:" + path)
	require.NoError(t, err)
	defer second.Close()
	ping(t, first, "during") // an existing connection never noticed
	ping(t, second, "after") // and the failed accepts were retried until this one got in
	select {
	case err := <-done:
		t.Fatalf("Serve ended on a temporary accept error: %v", err)
	default:
	}
	mu.Lock()
	ms := time.Millisecond
	require.Equal(t, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 320 * ms, 640 * ms,
		time.Second, time.Second, time.Second, time.Second}, waits, "5 ms doubling, capped at 1 s")
	mu.Unlock()
	require.Contains(t, logs.String(), "too many open files")

	// After a good accept the next streak starts small again.
	fl.failNext(1)
	third, err := Dial("unix:" + path)
	require.NoError(t, err)
	defer third.Close()
	ping(t, third, "again")
	mu.Lock()
	require.Equal(t, 5*ms, waits[len(waits)-1])
	mu.Unlock()

	cancel()
	require.NoError(t, <-done)
}

func TestServeEndsOnAPermanentAcceptError(t *testing.T) {
	t.Parallel()
	l, err := Listen("unix:" + filepath.Join(t.TempDir(), "k.sock"))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), l, newDevice()) }()
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, l.Close()) // closed under it by someone else: not something a retry fixes
	select {
	case err := <-done:
		require.ErrorContains(t, err, "accept")
	case <-time.After(5 * time.Second):
		t.Fatal("Serve kept going on a closed listener")
	}
}

// TestServeSurvivesFileDescriptorExhaustion runs a real server in a child process whose open-file
// limit is low, fills it with idle connections until accept(2) fails with EMFILE, and checks that
// the server is still there afterwards: an old connection keeps working, and once descriptors are
// free again a new one is served.
func TestServeSurvivesFileDescriptorExhaustion(t *testing.T) {
	if os.Getenv("FIDOLAB_EMFILE_CHILD") == "1" {
		exhaustDescriptors(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeSurvivesFileDescriptorExhaustion$", "-test.v")
	cmd.Env = append(os.Environ(), "FIDOLAB_EMFILE_CHILD=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestServeSurvivesFileDescriptorExhaustion")
}

func exhaustDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.sock")
	l, err := Listen("unix:" + path)
	require.NoError(t, err)
	var logs syncLog
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, newDevice(), WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))) }()
	old, err := Dial("unix:" + path)
	require.NoError(t, err)
	defer old.Close()
	ping(t, old, "old")

	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 40), Max: 0}
	var cur syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur))
	lim.Max = cur.Max
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim))
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur) })

	// Dial until the process is out of descriptors; the server's accepts then fail with EMFILE.
	var idle []net.Conn
	for len(idle) < 1000 {
		c, err := net.Dial("unix", path)
		if err != nil {
			break
		}
		idle = append(idle, c)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "too many open files") {
		require.True(t, time.Now().Before(deadline), "accept never failed with EMFILE (%d connections)", len(idle))
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve ended when accept failed: %v", err)
	default:
	}
	ping(t, old, "still here")

	for _, c := range idle { // the server closes its ends too, freeing descriptors
		c.Close()
	}
	var fresh ctaphid.ReportConn
	for fresh == nil {
		require.True(t, time.Now().Before(deadline.Add(10*time.Second)), "no new connection after descriptors were freed")
		if fresh, err = Dial("unix:" + path); err != nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	defer fresh.Close()
	ping(t, fresh, "new")
	ping(t, old, "and still here")
	cancel()
	require.NoError(t, <-done)
	t.Logf("%d idle connections exhausted the limit", len(idle))
}
