// Package socket serves a ctaphid.Device over a Unix or TCP stream socket carrying raw 64-byte
// CTAPHID reports in both directions, and dials such a socket from the host side. The wire contract
// is in docs/socket-transport.md.
package socket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/listener"
)

// parse splits "unix:PATH" or "tcp:HOST:PORT" into a network and an address.
func parse(addr string) (network, address string, err error) {
	network, address, err = listener.ParseAddr(addr)
	if err != nil {
		return "", "", fmt.Errorf("socket: %w", err)
	}
	return network, address, nil
}

// ListenOption widens what Listen allows.
type ListenOption func(*listener.Options)

// AllowRemote lets "tcp:HOST:PORT" bind to a non-loopback address or every interface, and writes a
// warning to warn (nil: none). Without it such an address is refused: the key has no authentication.
func AllowRemote(warn io.Writer) ListenOption {
	return func(o *listener.Options) { o.AllowRemote, o.Warn = true, warn }
}

// Listen opens a listener on "unix:PATH" or "tcp:HOST:PORT" by the rules of package listener:
// TCP on loopback only (unless AllowRemote); the Unix socket file is mode 0600 from the moment it
// exists; a live key's socket at PATH is never taken over (the error matches listener.ErrInUse:
// "PATH is in use by another key"), a stale one left by a crash is replaced, and any other kind of
// file at PATH is an error and left alone.
func Listen(addr string, opts ...ListenOption) (net.Listener, error) {
	var o listener.Options
	for _, opt := range opts {
		opt(&o)
	}
	l, err := listener.Listen(addr, o)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	return l, nil
}

// ServeOption tunes Serve.
type ServeOption func(*serveOptions)

type serveOptions struct {
	logger *slog.Logger
	after  func(time.Duration) <-chan time.Time
}

// WithLogger logs accept failures (and the retries after them) to l.
func WithLogger(l *slog.Logger) ServeOption { return func(o *serveOptions) { o.logger = l } }

// withClock replaces the backoff's clock in tests.
func withClock(after func(time.Duration) <-chan time.Time) ServeOption {
	return func(o *serveOptions) { o.after = after }
}

// Serve accepts connections on l until ctx ends, each one a Port of d, like a process holding the
// key's hidraw node open. It closes l and every connection before returning, and returns nil when
// ctx ended it. An accept that fails for a reason that can heal (too many open files, …) does not
// end it: it backs off (5 ms doubling to 1 s, as net/http does) and tries again, while the
// connections it has keep being served. Any other accept error ends it with that error.
func Serve(ctx context.Context, l net.Listener, d *ctaphid.Device, opts ...ServeOption) error {
	var so serveOptions
	for _, opt := range opts {
		opt(&so)
	}
	log := so.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	backoff := listener.Backoff{After: so.after}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	stop := context.AfterFunc(ctx, func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	defer stop()
	var err error
	for {
		c, aerr := l.Accept()
		if aerr != nil && ctx.Err() == nil && listener.Temporary(aerr) {
			wait, ok := backoff.Wait(ctx)
			log.Warn("socket: accept failed; retrying", "err", aerr, "after", wait)
			if ok {
				continue
			}
		}
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("socket: accept: %w", aerr)
				l.Close()
			}
			break
		}
		backoff.Reset()
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			c.Close()
			break
		}
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serveConn(c, d)
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

// readChunk is how much a connection reads at once: the reports a host wrote in one go (a whole
// message) arrive with one read system call instead of one per 64-byte report.
const readChunk = 4096

func serveConn(c net.Conn, d *ctaphid.Device) {
	defer c.Close()
	// The device's output for this host is gathered per message (out) and written with one
	// system call when the message is complete (flush); both run on one goroutine at a time.
	var wbuf []byte
	port := d.Open(func(r []byte) { wbuf = append(wbuf, r...) }, ctaphid.WithFlush(func() {
		if len(wbuf) == 0 {
			return
		}
		if _, err := c.Write(wbuf); err != nil {
			c.Close() // the read loop then ends and closes the port
		}
		wbuf = wbuf[:0]
	}))
	if who := describePeer(c); who != "" {
		port.Describe(who) // for traces: which process holds the key
	}
	buf := make([]byte, readChunk)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		have += n
		off := have - have%ctaphid.ReportSize
		if off > 0 {
			port.InputReports(buf[:off]) // the whole reports this read completed, at once
		}
		have = copy(buf, buf[off:have])
		if err != nil {
			break // a partial report at EOF is dropped
		}
	}
	c.Close()
	port.Close()
}

// Conn is the host side of a report socket.
type Conn struct {
	c   net.Conn
	rmu sync.Mutex
	// rbuf[roff:rend] has been read and not yet returned: the reports the key wrote in one go
	// arrive with one read system call. A read interrupted by ctx keeps what it got, so the
	// stream stays aligned on report boundaries.
	rbuf       [readChunk]byte
	roff, rend int
}

var _ ctaphid.ReportsWriter = (*Conn)(nil)

// Dial connects to a report socket at "unix:PATH" or "tcp:HOST:PORT".
func Dial(addr string) (ctaphid.ReportConn, error) {
	network, address, err := parse(addr)
	if err != nil {
		return nil, err
	}
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, fmt.Errorf("socket: dialing %s: %w", addr, err)
	}
	return &Conn{c: c}, nil
}

// WriteReport writes one 64-byte report.
func (c *Conn) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	return c.WriteReports(ctx, r)
}

// WriteReports writes whole 64-byte reports with one system call (ctaphid.Client writes each
// message this way).
func (c *Conn) WriteReports(ctx context.Context, reports []byte) error {
	if len(reports)%ctaphid.ReportSize != 0 {
		return ctaphid.ErrReportSize
	}
	stop := deadline(ctx, c.c.SetWriteDeadline)
	defer stop()
	_, err := c.c.Write(reports)
	return ctxError(ctx, err)
}

// ReadReport reads one 64-byte report. A read interrupted by ctx keeps the bytes it got, so the
// stream stays aligned on report boundaries.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rend-c.roff < ctaphid.ReportSize {
		c.rend = copy(c.rbuf[:], c.rbuf[c.roff:c.rend])
		c.roff = 0
		stop := deadline(ctx, c.c.SetReadDeadline)
		defer stop()
		for c.rend < ctaphid.ReportSize {
			m, err := c.c.Read(c.rbuf[c.rend:])
			c.rend += m
			if err != nil {
				return nil, ctxError(ctx, err)
			}
		}
	}
	out := [ctaphid.ReportSize]byte(c.rbuf[c.roff:])
	c.roff += ctaphid.ReportSize
	return out[:], nil
}

// Close closes the connection; the device cancels a request this connection started.
func (c *Conn) Close() error { return c.c.Close() }

// ctxError reports an I/O error caused by ctx as ctx's error. The socket deadline equals ctx's, so
// the socket may time out a moment before ctx reports itself done.
func ctxError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// deadline applies ctx's deadline and cancellation to a socket direction and returns the cleanup.
// A context that can never end (context.Background) costs nothing: the socket has no deadline
// between calls.
func deadline(ctx context.Context, set func(time.Time) error) func() {
	if ctx.Done() == nil {
		return func() {}
	}
	if d, ok := ctx.Deadline(); ok {
		set(d)
	} else {
		set(time.Time{})
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		set(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // a late past deadline must not land on the next call
		}
		set(time.Time{})
	}
}
