// Package netserve holds what the usbredir and USB/IP servers share below their protocols: an
// accept loop that serves each connection in its own goroutine until a context ends, and an
// ordered writer that sends a connection's packets from one goroutine, batched when they queue up.
package netserve

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/fidolab/fidolab/transport/listener"
)

// Serve accepts connections on l until ctx ends and runs serve for each in its own goroutine; it
// closes l and waits for every serve to return. An accept error that can heal (too many open files,
// an aborted connection: listener.Temporary) is retried after a backoff, as package listener's rules
// say, while the connections already accepted keep being served. It returns nil when ctx ended it
// and any other accept error otherwise, prefixed with name.
func Serve(ctx context.Context, name string, l net.Listener, serve func(c net.Conn)) error {
	return serveWith(ctx, name, l, serve, &listener.Backoff{})
}

func serveWith(ctx context.Context, name string, l net.Listener, serve func(c net.Conn), backoff *listener.Backoff) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil && ctx.Err() == nil && listener.Temporary(err) {
			if _, ok := backoff.Wait(ctx); ok {
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.Close()
			return fmt.Errorf("%s: accept: %w", name, err)
		}
		backoff.Reset()
		wg.Add(1)
		go func() {
			defer wg.Done()
			serve(c)
		}()
	}
}

// Remote names the peer of c for logs: its address, or for a Unix socket (whose peer has no
// name) the socket's path.
func Remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		return a.String()
	}
	return c.LocalAddr().String()
}

// maxBatch bounds how many queued bytes one write carries.
const maxBatch = 64 << 10

// Writer sends byte slices on a connection in the order Send was called, from one goroutine, so
// that a sender never waits for the socket unless the writer is far behind (a paused VM reads
// nothing; the queue then fills and Send blocks, as a USB device waits for the host to poll).
// A write error closes the connection, which ends the connection's reader.
type Writer struct {
	c    net.Conn
	out  chan []byte
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// NewWriter starts the writer goroutine of c; queue is how many slices may wait.
func NewWriter(c net.Conn, queue int) *Writer {
	w := &Writer{c: c, out: make(chan []byte, queue), done: make(chan struct{})}
	w.wg.Add(1)
	go w.run()
	return w
}

// Send queues b, which the caller must not change afterwards. After Close it drops b.
func (w *Writer) Send(b []byte) {
	select {
	case w.out <- b:
	case <-w.done:
	}
}

// Close stops the writer (what is still queued is dropped) and waits for its goroutine.
func (w *Writer) Close() {
	w.stop()
	w.wg.Wait()
}

func (w *Writer) stop() { w.once.Do(func() { close(w.done) }) }

func (w *Writer) run() {
	defer w.wg.Done()
	var buf []byte
	for {
		select {
		case b := <-w.out:
			buf = append(buf[:0], b...)
		more:
			for len(buf) < maxBatch {
				select {
				case b := <-w.out:
					buf = append(buf, b...)
				default:
					break more
				}
			}
			if _, err := w.c.Write(buf); err != nil {
				w.c.Close()
				w.stop()
				return
			}
		case <-w.done:
			return
		}
	}
}
