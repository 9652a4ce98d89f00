// Package inproc connects a host-side client to a ctaphid.Device in the same process, with no
// operating system in between: the transport of the Go API tests and of the scenario harness.
package inproc

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

var _ ctaphid.TimedReportConn = (*Conn)(nil)

// ErrClosed is returned by a Conn that has been closed.
var ErrClosed = errors.New("inproc: connection closed")

// inboxSize is how many device reports wait for the host before the device's port writer blocks,
// as a USB endpoint NAKs until the host polls.
const inboxSize = 256

// Conn is one host connection to a Device: a ctaphid.Port and a report queue. It is a
// ctaphid.TimedReportConn: ReadReportAt tells when, on the device's clock, each report was sent.
type Conn struct {
	port  *ctaphid.Port
	inbox chan timedReport
	done  chan struct{}
	once  sync.Once
}

type timedReport struct {
	r  [ctaphid.ReportSize]byte
	at time.Time
}

// Connect opens a new port on d, as a process opening the key's hidraw node.
func Connect(d *ctaphid.Device) *Conn {
	c := &Conn{inbox: make(chan timedReport, inboxSize), done: make(chan struct{})}
	c.port = d.OpenTimed(func(r []byte, at time.Time) {
		select {
		case c.inbox <- timedReport{[ctaphid.ReportSize]byte(r), at}:
		case <-c.done:
		}
	})
	return c
}

// WriteReport delivers one 64-byte report to the device.
func (c *Conn) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	select {
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	default:
	}
	c.port.Input(r)
	return nil
}

// ReadReport returns the next report the device sent to this connection.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	r, _, err := c.ReadReportAt(ctx)
	return r, err
}

// ReadReportAt returns the next report the device sent to this connection and the time, on the
// device's clock, at which the device produced it.
func (c *Conn) ReadReportAt(ctx context.Context) ([]byte, time.Time, error) {
	select {
	case <-c.done: // a closed connection reports so even with reports still queued
		return nil, time.Time{}, ErrClosed
	default:
	}
	select {
	case tr := <-c.inbox:
		r := tr.r // only the report escapes, not its time
		return r[:], tr.at, nil
	case <-c.done:
		return nil, time.Time{}, ErrClosed
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// Close closes the port: a request in flight from this connection is cancelled.
func (c *Conn) Close() error {
	c.once.Do(func() {
		close(c.done)
		c.port.Close()
	})
	return nil
}
