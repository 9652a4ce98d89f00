// Package inproc connects a host-side client to a ctaphid.Device in the same process, with no
// operating system in between: the transport of the Go API tests and of the scenario harness.
//
// It is built to cost as little as the request it carries. The device writes to a Conn directly
// (ctaphid.Direct: no writer goroutine per connection), and a ctaphid.Client on a Conn runs its
// request on its own goroutine while it waits for the answer (ctaphid.PendingRunner), so an
// in-process request involves no hand-off between goroutines. Keepalives, CANCEL, BUSY and the
// device-clock time of every report (ReadReportAt) are as with any other transport.
package inproc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

var (
	_ ctaphid.TimedReportConn = (*Conn)(nil)
	_ ctaphid.PendingRunner   = (*Conn)(nil)
	_ ctaphid.ReportsWriter   = (*Conn)(nil)
)

// ErrClosed is returned by a Conn that has been closed.
var ErrClosed = errors.New("inproc: connection closed")

// maxInbox is how many device reports wait for the host before further ones are dropped, as
// hidraw drops input reports a reader does not collect. The device never waits for the host,
// so a host that stops reading cannot stall the key (or the goroutine of its own request).
const maxInbox = 4096

// Conn is one host connection to a Device: a ctaphid.Port and a report queue. It is a
// ctaphid.TimedReportConn: ReadReportAt tells when, on the device's clock, each report was sent.
type Conn struct {
	port   *ctaphid.Port
	closed atomic.Bool
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	inbox   []timedReport // inbox[head:] are waiting for the host
	head    int
	waiting bool          // a reader waits on wake
	wake    chan struct{} // capacity 1
	dropped int

	last [ctaphid.ReportSize]byte // the report ReadReportAt returned last (one reader at a time)
}

type timedReport struct {
	r  [ctaphid.ReportSize]byte
	at time.Time
}

// Connect opens a new port on d, as a process opening the key's hidraw node.
func Connect(d *ctaphid.Device) *Conn {
	c := &Conn{done: make(chan struct{}), wake: make(chan struct{}, 1)}
	c.port = d.OpenTimed(c.deliver, ctaphid.Direct())
	return c
}

// deliver queues one report from the device. It never blocks (the port is Direct).
func (c *Conn) deliver(r []byte, at time.Time) {
	c.mu.Lock()
	if len(c.inbox)-c.head >= maxInbox {
		c.dropped++
		c.mu.Unlock()
		return
	}
	c.inbox = append(c.inbox, timedReport{[ctaphid.ReportSize]byte(r), at})
	if c.waiting {
		c.waiting = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
}

// WriteReport delivers one 64-byte report to the device.
func (c *Conn) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	return c.WriteReports(ctx, r)
}

// WriteReports delivers whole 64-byte reports to the device at once (ctaphid.Client writes
// every message this way): one hold of the device's lock per message instead of one per report.
func (c *Conn) WriteReports(ctx context.Context, reports []byte) error {
	if len(reports)%ctaphid.ReportSize != 0 {
		return ctaphid.ErrReportSize
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c.port.InputReports(reports)
	return nil
}

// RunPending runs the request this connection just sent on the calling goroutine, unless the
// device already gave it to a goroutine of its own (ctaphid.Port.RunPending).
func (c *Conn) RunPending() bool {
	if c.closed.Load() {
		return false
	}
	return c.port.RunPending()
}

// ReadReport returns the next report the device sent to this connection.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	r, _, err := c.ReadReportAt(ctx)
	return r, err
}

// ReadReportAt returns the next report the device sent to this connection and the time, on the
// device's clock, at which the device produced it. The report is valid until the next read.
func (c *Conn) ReadReportAt(ctx context.Context) ([]byte, time.Time, error) {
	for {
		if c.closed.Load() { // a closed connection reports so even with reports still queued
			return nil, time.Time{}, ErrClosed
		}
		c.mu.Lock()
		if c.head < len(c.inbox) {
			tr := &c.inbox[c.head]
			c.last = tr.r
			at := tr.at
			if c.head++; c.head == len(c.inbox) {
				c.inbox, c.head = c.inbox[:0], 0
			}
			c.mu.Unlock()
			return c.last[:], at, nil
		}
		c.waiting = true
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-c.done:
			return nil, time.Time{}, ErrClosed
		case <-ctx.Done():
			c.mu.Lock()
			c.waiting = false
			c.mu.Unlock()
			return nil, time.Time{}, ctx.Err()
		}
	}
}

// Dropped is how many reports the device sent that did not fit in the connection's queue
// because the host did not read them.
func (c *Conn) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Close closes the port: a request in flight from this connection is cancelled.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		close(c.done)
		c.port.Close()
		c.mu.Lock()
		c.inbox, c.head = nil, 0
		c.mu.Unlock()
	})
	return nil
}
