package usb

import (
	"context"
	"errors"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// ErrHubClosed is returned by a shared connection after it was closed.
var ErrHubClosed = errors.New("usb: shared connection closed")

// Hub lets several host clients use one key at once, as several processes may hold a hidraw node
// open: a USB interface can be claimed by one handle only, so the Hub holds the one real
// connection and gives each Dial a view of it. Every view receives every input report (CTAPHID
// clients keep their own channel's), writes go out one at a time. The real connection is opened by
// the first Dial and closed when the last view closes, which gives the interface back to the kernel.
type Hub struct {
	open func(ctx context.Context) (ctaphid.ReportConn, error)

	mu     sync.Mutex
	conn   ctaphid.ReportConn
	views  map[*view]struct{}
	cancel context.CancelFunc // stops the reader
	done   chan struct{}      // closed when the reader has returned

	wmu sync.Mutex
}

// NewHub returns a Hub over the connections open makes (Open of a spec, say).
func NewHub(open func(ctx context.Context) (ctaphid.ReportConn, error)) *Hub {
	return &Hub{open: open, views: map[*view]struct{}{}}
}

// viewQueue is how many input reports wait for a view that does not read: as hidraw, a slow reader
// loses reports beyond it rather than stalling the others.
const viewQueue = 256

// Dial returns a new view of the key, opening it if no view is open.
func (h *Hub) Dial(ctx context.Context) (ctaphid.ReportConn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		c, err := h.open(ctx)
		if err != nil {
			return nil, err
		}
		rctx, cancel := context.WithCancel(context.Background())
		h.conn, h.cancel, h.done = c, cancel, make(chan struct{})
		go h.read(rctx, c, h.done)
	}
	v := &view{h: h, conn: h.conn, in: make(chan []byte, viewQueue), gone: make(chan struct{})}
	h.views[v] = struct{}{}
	return v, nil
}

// read hands every input report to every view until the connection fails or the Hub stops it.
func (h *Hub) read(ctx context.Context, c ctaphid.ReportConn, done chan struct{}) {
	defer close(done)
	for {
		r, err := c.ReadReport(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			h.fail(c, err)
			return
		}
		h.mu.Lock()
		for v := range h.views {
			if v.conn != c {
				continue
			}
			select {
			case v.in <- append([]byte(nil), r...): // each view its own copy
			default: // a view that does not read loses reports, as a hidraw reader does
			}
		}
		h.mu.Unlock()
	}
}

// fail ends every view of c with err (the key was unplugged, say); the next Dial opens anew.
func (h *Hub) fail(c ctaphid.ReportConn, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for v := range h.views {
		if v.conn == c {
			v.endWith(err)
			delete(h.views, v)
		}
	}
	if h.conn == c {
		h.conn = nil
		go func() { _ = c.Close() }()
	}
}

// release drops v; the last view of the open connection closes it.
func (h *Hub) release(v *view) error {
	h.mu.Lock()
	if _, ok := h.views[v]; !ok {
		h.mu.Unlock()
		return nil
	}
	delete(h.views, v)
	for o := range h.views {
		if o.conn == v.conn {
			h.mu.Unlock()
			return nil
		}
	}
	var (
		cancel context.CancelFunc
		done   chan struct{}
	)
	if h.conn == v.conn {
		cancel, done = h.cancel, h.done
		h.conn = nil
	}
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return v.conn.Close()
}

type view struct {
	h    *Hub
	conn ctaphid.ReportConn
	in   chan []byte

	once sync.Once
	gone chan struct{}
	err  error // why gone was closed
}

func (v *view) endWith(err error) {
	v.once.Do(func() {
		v.err = err
		close(v.gone)
	})
}

func (v *view) WriteReport(ctx context.Context, r []byte) error {
	select {
	case <-v.gone:
		return v.err
	default:
	}
	v.h.wmu.Lock()
	defer v.h.wmu.Unlock()
	return v.conn.WriteReport(ctx, r)
}

func (v *view) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case <-v.gone:
		return nil, v.err
	default:
	}
	select {
	case r := <-v.in:
		return r, nil
	case <-v.gone:
		return nil, v.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *view) Close() error {
	v.endWith(ErrHubClosed)
	return v.h.release(v)
}
