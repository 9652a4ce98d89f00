// Package inproc connects a host-side client to a ctaphid.Device in the same process, with no
// operating system in between: the transport of the Go API tests and of the scenario harness.
package inproc

import (
	"context"
	"errors"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// ErrClosed is returned by a Conn that has been closed.
var ErrClosed = errors.New("inproc: connection closed")

// inboxSize is how many device reports wait for the host before the device's port writer blocks,
// as a USB endpoint NAKs until the host polls.
const inboxSize = 256

// Conn is one host connection to a Device: a ctaphid.Port and a report queue.
type Conn struct {
	port  *ctaphid.Port
	inbox chan [ctaphid.ReportSize]byte
	done  chan struct{}
	once  sync.Once
}

// Connect opens a new port on d, as a process opening the key's hidraw node.
func Connect(d *ctaphid.Device) ctaphid.ReportConn {
	c := &Conn{inbox: make(chan [ctaphid.ReportSize]byte, inboxSize), done: make(chan struct{})}
	c.port = d.Open(func(r []byte) {
		select {
		case c.inbox <- [ctaphid.ReportSize]byte(r):
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
	select {
	case <-c.done: // a closed connection reports so even with reports still queued
		return nil, ErrClosed
	default:
	}
	select {
	case r := <-c.inbox:
		return r[:], nil
	case <-c.done:
		return nil, ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
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
