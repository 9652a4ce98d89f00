package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"golang.org/x/net/netutil"
)

// Limits bound what one client can hold of the API. Every request is a small JSON body answered
// at once (nothing waits for the key), so tight limits cost a legitimate client nothing.
type Limits struct {
	// ReadHeader is how long a client has to send its request headers.
	ReadHeader time.Duration
	// Read is how long a client has to send a whole request, body included (a slow body).
	Read time.Duration
	// Write is how long the answer may take to be written.
	Write time.Duration
	// Idle is how long a keep-alive connection may wait for its next request.
	Idle time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// MaxConns is how many connections are served at once; more wait to be accepted.
	MaxConns int
}

// DefaultLimits are the limits of a served key's control API.
var DefaultLimits = Limits{
	ReadHeader: 5 * time.Second, Read: 10 * time.Second, Write: 10 * time.Second, Idle: 30 * time.Second,
	MaxHeaderBytes: 8 << 10, MaxConns: 32,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.ReadHeader > 0 {
		d.ReadHeader = l.ReadHeader
	}
	if l.Read > 0 {
		d.Read = l.Read
	}
	if l.Write > 0 {
		d.Write = l.Write
	}
	if l.Idle > 0 {
		d.Idle = l.Idle
	}
	if l.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = l.MaxHeaderBytes
	}
	if l.MaxConns > 0 {
		d.MaxConns = l.MaxConns
	}
	return d
}

// Serve answers the control API of k on l until ctx ends, with o's token, l's own address for
// the Host check and the limits. It closes l.
func Serve(ctx context.Context, l net.Listener, k *emulator.Key, o Options) error {
	if o.Addr == nil {
		o.Addr = l.Addr()
	}
	return serveHandler(ctx, l, NewHandler(k, o), o)
}

// ServeFleet is Serve for the keys of serve --keys N (FleetHandler).
func ServeFleet(ctx context.Context, l net.Listener, keys []Entry, o Options) error {
	if o.Addr == nil {
		o.Addr = l.Addr()
	}
	return serveHandler(ctx, l, NewFleetHandler(keys, o), o)
}

// serveHandler serves h on l with o's limits until ctx ends.
func serveHandler(ctx context.Context, l net.Listener, h http.Handler, o Options) error {
	lim := o.Limits.withDefaults()
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeader,
		ReadTimeout:       lim.Read,
		WriteTimeout:      lim.Write,
		IdleTimeout:       lim.Idle,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			_ = srv.Close()
		case <-done:
		}
	}()
	err := srv.Serve(netutil.LimitListener(l, lim.MaxConns))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Listen opens the control API's listener: "HOST:PORT" or "tcp:HOST:PORT" on a loopback address
// only (it can take over the simulated user, so another machine must never reach it).
func Listen(addr string) (net.Listener, error) {
	hostport := strings.TrimPrefix(addr, "tcp:")
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("control address %q: want 127.0.0.1:PORT or unix:PATH: %w", addr, err)
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("control address %q: only loopback addresses (127.0.0.1, [::1], localhost) or unix:PATH are allowed", addr)
	}
	return net.Listen("tcp", hostport)
}

// Token limits: a token is a secret, not a password a person types.
const (
	minTokenLen = 16
	maxTokenLen = 4096
)

// ReadTokenFile reads the control API's token from path: a regular file that only its owner can
// read (like a state file), holding at least 16 bytes after surrounding white space is trimmed.
func ReadTokenFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("control token %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("control token %s: mode %v lets others read it, want 0600", path, fi.Mode().Perm())
	}
	if fi.Size() > maxTokenLen+64 {
		return nil, fmt.Errorf("control token %s: %d bytes, at most %d", path, fi.Size(), maxTokenLen)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("control token: %w", err)
	}
	tok := []byte(strings.TrimSpace(string(b)))
	clear(b)
	switch {
	case len(tok) < minTokenLen:
		return nil, fmt.Errorf("control token %s: %d bytes, at least %d (e.g. (umask 077; head -c 32 /dev/urandom | base64 > %s))", path, len(tok), minTokenLen, path)
	case len(tok) > maxTokenLen:
		return nil, fmt.Errorf("control token %s: %d bytes, at most %d", path, len(tok), maxTokenLen)
	case strings.ContainsAny(string(tok), " \t\r\n"):
		return nil, fmt.Errorf("control token %s: one line without spaces", path)
	}
	return tok, nil
}
