package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
)

// MaxLine bounds one line of a trace; the largest exchange (two 7609-byte messages as hex with
// their diagnostic notation) takes well under a tenth of it.
const MaxLine = 4 << 20

// ErrTruncated marks a trace that stops early: a last line without its newline, or no end record.
var ErrTruncated = errors.New("trace is truncated")

// FormatError is a trace line that cannot be read. Line counts from 1 (the header).
type FormatError struct {
	Line int
	Err  error
}

func (e *FormatError) Error() string { return fmt.Sprintf("trace line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *FormatError) Unwrap() error { return e.Err }

// Reader reads a trace one record at a time.
type Reader struct {
	br      *bufio.Reader
	line    int
	h       Header
	sources map[int]*Record
	records int
	ended   bool
	err     error
}

// NewReader reads and checks the header.
func NewReader(r io.Reader) (*Reader, error) {
	tr := &Reader{br: bufio.NewReaderSize(r, 64<<10), sources: map[int]*Record{}}
	line, err := tr.readLine()
	if err == io.EOF {
		return nil, &FormatError{Line: 1, Err: errors.New("empty file: not a fidolab trace")}
	}
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&tr.h); err != nil {
		return nil, &FormatError{Line: 1, Err: fmt.Errorf("not a fidolab trace header: %v", err)}
	}
	switch {
	case tr.h.Format != Format:
		return nil, &FormatError{Line: 1, Err: fmt.Errorf("format %q, want %q: not a fidolab trace", tr.h.Format, Format)}
	case tr.h.Version > Version:
		return nil, &FormatError{Line: 1, Err: fmt.Errorf("trace version %d is newer than this fidolab reads (%d): upgrade fidolab", tr.h.Version, Version)}
	case tr.h.Version < 1:
		return nil, &FormatError{Line: 1, Err: fmt.Errorf("trace version %d is not valid", tr.h.Version)}
	}
	return tr, nil
}

// Header returns the trace's header.
func (r *Reader) Header() Header { return r.h }

// Source returns the source record with number id, nil if none has been read.
func (r *Reader) Source(id int) *Record { return r.sources[id] }

// Line returns the line number of the record Next returned last.
func (r *Reader) Line() int { return r.line }

// readLine returns the next line without its newline. A last line without a newline is
// ErrTruncated; io.EOF means a clean end.
func (r *Reader) readLine() ([]byte, error) {
	r.line++
	var buf []byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > MaxLine {
			return nil, &FormatError{Line: r.line, Err: fmt.Errorf("line longer than %d bytes", MaxLine)}
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(buf) == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, &FormatError{Line: r.line, Err: fmt.Errorf("%w: the last line has no newline (cut off mid-record)", ErrTruncated)}
		default:
			return nil, fmt.Errorf("trace line %d: %w", r.line, err)
		}
	}
}

// Next returns the next record. At the end of a complete trace it returns io.EOF; a trace that
// stops early, or a record that is not valid, returns a *FormatError naming the line. Record
// types this version does not know are returned as they are, for the caller to skip.
func (r *Reader) Next() (*Record, error) {
	if r.err != nil {
		return nil, r.err
	}
	rec, err := r.next()
	if err != nil {
		r.err = err
	}
	return rec, err
}

func (r *Reader) next() (*Record, error) {
	line, err := r.readLine()
	if err == io.EOF {
		if !r.ended {
			return nil, &FormatError{Line: r.line - 1, Err: fmt.Errorf("%w: no end record after the last line (the recorder was stopped before it finished, or is still writing)", ErrTruncated)}
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	if r.ended {
		return nil, &FormatError{Line: r.line, Err: errors.New("record after the end record")}
	}
	var rec Record
	if err := json.Unmarshal(line, &rec); err != nil {
		return nil, &FormatError{Line: r.line, Err: fmt.Errorf("not a valid record: %v", err)}
	}
	if err := r.check(&rec); err != nil {
		return nil, &FormatError{Line: r.line, Err: err}
	}
	return &rec, nil
}

// check validates a record against what came before it.
func (r *Reader) check(rec *Record) error {
	if rec.Type == "" {
		return errors.New("record has no type")
	}
	if rec.T.IsZero() {
		return fmt.Errorf("%s record has no time", rec.Type)
	}
	if rec.Type == TypeEnd {
		if rec.Records != r.records {
			return fmt.Errorf("end record counts %d records, the trace has %d: records are missing", rec.Records, r.records)
		}
		r.ended = true
		return nil
	}
	r.records++
	if rec.Type == TypeSource {
		if rec.Src <= 0 {
			return errors.New("source record without a positive src number")
		}
		if r.sources[rec.Src] != nil {
			return fmt.Errorf("source %d declared twice", rec.Src)
		}
		r.sources[rec.Src] = rec
		return nil
	}
	if rec.Src != 0 && r.sources[rec.Src] == nil {
		return fmt.Errorf("%s record refers to source %d, which no earlier source record declares", rec.Type, rec.Src)
	}
	switch rec.Type {
	case TypeReport:
		if rec.From != FromHost && rec.From != FromKey {
			return fmt.Errorf("report from %q, want %q or %q", rec.From, FromHost, FromKey)
		}
		if rec.Hex == nil {
			return errors.New("report without hex")
		}
	case TypeExchange:
		if rec.Request == nil && rec.Response == nil {
			return errors.New("exchange with neither request nor response")
		}
		for _, m := range []*Message{rec.Request, rec.Response} {
			if m == nil {
				continue
			}
			if m.Hex == nil {
				return errors.New("exchange message without hex")
			}
			if len(m.Hex.B) != m.Len {
				return fmt.Errorf("exchange message says len %d but has %d bytes of hex", m.Len, len(m.Hex.B))
			}
		}
	case TypeNote:
		if p := rec.Peer; p != "" {
			if s := r.sources[rec.Src]; s != nil {
				s.Peer = p
			}
		}
	}
	return nil
}

// All iterates over the records; the iteration stops after the first error, which it yields.
func (r *Reader) All() iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		for {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(rec, err) || err != nil {
				return
			}
		}
	}
}

// Exchanges iterates over the exchange records in trace order (the order their answers came),
// skipping the other records; the iteration stops after the first error, which it yields.
func (r *Reader) Exchanges() iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		for rec, err := range r.All() {
			if err != nil {
				yield(nil, err)
				return
			}
			if rec.Type == TypeExchange && !yield(rec, nil) {
				return
			}
		}
	}
}

// Payload returns the message's bytes (redacted bytes are zero) and whether any were redacted.
func (m *Message) Payload() ([]byte, bool) {
	if m == nil || m.Hex == nil {
		return nil, false
	}
	return m.Hex.B, len(m.Hex.Redacted) > 0
}
