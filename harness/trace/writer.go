package trace

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
)

// Writer writes a trace: the header, then one record per line. It is safe for concurrent use;
// records appear in the order Write is called. The first write error is kept and returned by
// every later call.
type Writer struct {
	mu     sync.Mutex
	bw     *bufio.Writer
	buf    []byte // one encoded record, reused
	n      int
	err    error
	closed bool
}

// NewWriter writes h (Format and Version are filled in) and returns a Writer for the records.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format, h.Version = Format, Version
	if h.Created.IsZero() {
		h.Created = clock.Real{}.Now()
	}
	h.Created = h.Created.UTC()
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	tw := &Writer{bw: bw}
	if err := enc.Encode(h); err != nil {
		return nil, fmt.Errorf("trace: writing header: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("trace: writing header: %w", err)
	}
	return tw, nil
}

// ErrClosed is returned by a Writer after Close.
var ErrClosed = errors.New("trace: writer closed")

// Write appends one record (its time is made UTC).
func (w *Writer) Write(r *Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write(r)
}

func (w *Writer) write(r *Record) error {
	if w.closed {
		return ErrClosed
	}
	if w.err != nil {
		return w.err
	}
	r.T = r.T.UTC()
	w.buf = append(appendRecord(w.buf[:0], r), '\n')
	if _, err := w.bw.Write(w.buf); err != nil {
		w.err = fmt.Errorf("trace: writing record %d: %w", w.n+1, err)
		return w.err
	}
	w.n++
	return nil
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flush()
}

func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.bw.Flush(); err != nil {
		w.err = fmt.Errorf("trace: %w", err)
	}
	return w.err
}

// Close writes the end record (at time t) and flushes. It does not close the underlying writer.
func (w *Writer) Close(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.err
	}
	_ = w.write(&Record{Type: TypeEnd, T: t, Records: w.n})
	w.closed = true
	return w.flush()
}
