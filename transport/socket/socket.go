// Package socket serves a ctaphid.Device over a Unix or TCP stream socket carrying raw 64-byte
// CTAPHID reports in both directions, and dials such a socket from the host side. The wire contract
// is in docs/socket-transport.md.
package socket

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// parse splits "unix:PATH" or "tcp:HOST:PORT" into a network and an address.
func parse(addr string) (network, address string, err error) {
	network, address, ok := strings.Cut(addr, ":")
	if !ok || address == "" || (network != "unix" && network != "tcp") {
		return "", "", fmt.Errorf("socket: address %q is not unix:PATH or tcp:HOST:PORT", addr)
	}
	return network, address, nil
}

// Listen opens a listener on "unix:PATH" or "tcp:HOST:PORT". A stale Unix socket file at PATH is
// removed first (any other kind of file is left alone and is an error), and the new socket file gets
// mode 0600: a key answers whoever can connect, so only its owner may.
func Listen(addr string) (net.Listener, error) {
	network, address, err := parse(addr)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := removeStale(address); err != nil {
			return nil, err
		}
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, fmt.Errorf("socket: listening on %s: %w", addr, err)
	}
	if network == "unix" {
		if err := os.Chmod(address, 0o600); err != nil {
			l.Close()
			return nil, fmt.Errorf("socket: restricting %s: %w", address, err)
		}
	}
	return l, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket: checking %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("socket: %s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("socket: removing stale socket %s: %w", path, err)
	}
	return nil
}

// Serve accepts connections on l until ctx ends, each one a Port of d, like a process holding the
// key's hidraw node open. It closes l and every connection before returning, and returns nil when
// ctx ended it.
func Serve(ctx context.Context, l net.Listener, d *ctaphid.Device) error {
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
		if aerr != nil {
			if ctx.Err() == nil {
				err = fmt.Errorf("socket: accept: %w", aerr)
				l.Close()
			}
			break
		}
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
	buf := make([]byte, readChunk)
	have := 0
	for {
		n, err := c.Read(buf[have:])
		have += n
		off := 0
		for ; have-off >= ctaphid.ReportSize; off += ctaphid.ReportSize {
			port.Input(buf[off : off+ctaphid.ReportSize])
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
