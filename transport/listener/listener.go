// Package listener holds the rules every transport that listens for a host follows, so the usbredir,
// USB/IP and report-socket servers cannot differ on them:
//
//   - TCP listeners bind to loopback unless the caller allows remote hosts on purpose, and then a
//     warning says so (CheckLocal, Listen);
//   - Unix sockets are private from the moment their path exists, and a path a live key answers on
//     is never taken over, while a stale socket file left by a crash is replaced (Listen);
//   - a failed accept that can heal (too many open files, …) backs off and retries instead of
//     ending the server (Backoff).
package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ParseAddr splits "unix:PATH" or "tcp:HOST:PORT" into a network and an address.
func ParseAddr(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || address == "" || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("address %q is not unix:PATH or tcp:HOST:PORT", addr)
	}
	return network, address, nil
}

// ErrRemote reports a listen address that other machines could reach, given without permission.
var ErrRemote = errors.New("not a loopback address")

// ErrInUse reports a Unix socket path another live server answers on (errors.Is matches it).
var ErrInUse = errors.New("socket path is in use")

// inUseError names the path and what answers there: "PATH is in use by another key".
type inUseError struct{ path, what string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("%s is in use by another %s (stop that one first, or choose another path)", e.path, e.what)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// Options say what a listener may do beyond the safe default.
type Options struct {
	// AllowRemote lets a TCP listener bind to a non-loopback address (or all of them). The key has
	// no authentication: whoever reaches the port can use it.
	AllowRemote bool
	// Warn receives the warning printed when AllowRemote is used; nil discards it.
	Warn io.Writer
	// What names the thing being served in messages, e.g. "key"; "" means "key".
	What string
}

// CheckLocal returns nil when a TCP host:port only reaches this machine: a loopback IP literal, or
// "localhost" when every address it resolves to is loopback. An empty host (all interfaces), a
// wildcard, any other address and any other name are remote and refused with ErrRemote unless
// allowRemote; then CheckLocal still reports remote=true so the caller warns.
func CheckLocal(hostport string, allowRemote bool) (remote bool, err error) {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false, fmt.Errorf("address %q: %w", hostport, err)
	}
	if !isLoopbackHost(host) {
		if allowRemote {
			return true, nil
		}
		shown := host
		if shown == "" {
			shown = "every interface"
		}
		return true, fmt.Errorf("tcp:%s: %s (%w); the key has no authentication, so it listens on loopback "+
			"(127.0.0.1, [::1], localhost) unless --allow-remote is given", hostport, shown, ErrRemote)
	}
	return false, nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		// "localhost" is whatever the resolver says; all of it must be loopback.
		ips, err := net.DefaultResolver.LookupIPAddr(context.Background(), host)
		if err != nil || len(ips) == 0 {
			return false
		}
		for _, ip := range ips {
			if !ip.IP.IsLoopback() {
				return false
			}
		}
		return true
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return ip != nil && ip.IsLoopback()
}

// Listen opens a listener on "unix:PATH" or "tcp:HOST:PORT" following the package's rules.
func Listen(addr string, o Options) (net.Listener, error) {
	network, address, err := ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	what := o.What
	if what == "" {
		what = "key"
	}
	if network == "unix" {
		return listenUnix(address, what)
	}
	remote, err := CheckLocal(address, o.AllowRemote)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	if remote && o.Warn != nil {
		fmt.Fprintf(o.Warn, "fidolab: WARNING: --allow-remote: the %s on tcp:%s answers anyone who can reach "+
			"this port, without authentication\n", what, l.Addr())
	}
	return l, nil
}

// listenUnix creates the socket private from its first moment. A umask narrowed around bind(2)
// would be process-global (racing every other goroutine that creates files), and binding at PATH
// then chmod-ing leaves a window in which anyone may connect. Instead the socket is bound inside a
// fresh directory only its owner can search (so no one else can reach it whatever its mode), given
// mode 0600 there, and then hard-linked to PATH: link(2) is atomic and fails if PATH exists, so the
// socket appears at PATH already private, and never over a live key's socket.
func listenUnix(path, what string) (net.Listener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".fidolab-")
	if err != nil {
		return nil, fmt.Errorf("socket %s: private directory: %w", path, err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o700); err != nil { // MkdirTemp's 0700 passes through the umask
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	tmp := filepath.Join(dir, "s")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	ul.SetUnlinkOnClose(false) // the name it was bound to goes with dir; PATH is removed by Close
	if err := os.Chmod(tmp, 0o600); err != nil {
		ul.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := place(tmp, path, what); err != nil {
		ul.Close()
		return nil, err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		ul.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ul, path: path, fi: fi}, nil
}

// place links the bound socket tmp to path. An existing socket at path is probed: a server that
// answers keeps it (ErrInUse); a stale one (connection refused) is removed and the link retried.
func place(tmp, path, what string) error {
	for attempt := 0; ; attempt++ {
		err := os.Link(tmp, path)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			// A file system without hard links: rename, after the same checks (a narrow race
			// with another server starting at the same moment remains there).
			if err := checkExisting(path, what); err != nil {
				return err
			}
			if err := os.Rename(tmp, path); err != nil {
				return fmt.Errorf("socket %s: %w", path, err)
			}
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("socket %s: another server keeps creating it", path)
		}
		if err := checkExisting(path, what); err != nil {
			return err
		}
	}
}

// checkExisting makes way at path: nothing there is fine, a stale socket is removed, anything
// else is an error.
func checkExisting(path, what string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("socket %s: exists and is not a socket (left alone; remove it or choose another path)", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return &inUseError{path: path, what: what}
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not provably stale (e.g. another user's socket we may not connect to): leave it.
		return fmt.Errorf("socket %s: exists and cannot be probed (%v); remove it if nothing serves there", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("socket %s: removing stale socket: %w", path, err)
	}
	return nil
}

// unixListener removes its path on Close, but only while the path is still its own socket: a
// server that was replaced must not delete its successor's socket.
type unixListener struct {
	*net.UnixListener
	path string
	fi   fs.FileInfo
}

func (l *unixListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if fi, serr := os.Lstat(l.path); serr == nil && os.SameFile(fi, l.fi) {
		_ = os.Remove(l.path)
	}
	return err
}
