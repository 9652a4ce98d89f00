package trace

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Format and Version identify a trace in its header line. Version changes when a reader of the
// previous version would misread a trace; adding record types or fields does not change it
// (readers skip what they do not know). See docs/traces.md, "Versioning".
const (
	Format  = "fidolab-trace"
	Version = 1
)

// Record types.
const (
	TypeSource   = "source"
	TypeReport   = "report"
	TypeExchange = "exchange"
	TypeEvent    = "event"
	TypeMark     = "mark"
	TypeNote     = "note"
	TypeEnd      = "end"
)

// Directions: who sent a report or message.
const (
	FromHost = "host"
	FromKey  = "key"
)

// Sides of a source: where the recorder sat.
const (
	SideDevice   = "device"   // inside the key: a ctaphid.Device port (fidolab serve)
	SideHost     = "host"     // inside the host: a ctaphid.ReportConn (fidolab run, a client)
	SideEventLog = "eventlog" // imported from a Windows event log: no reports, only messages
)

// Header is the first line of a trace.
type Header struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Tool says what recorded the trace, e.g. "fidolab serve" or "fidolab trace import".
	Tool string `json:"tool,omitempty"`
	// Secrets is true when secrets were kept (--trace-secrets): treat the file as key material.
	Secrets bool `json:"secrets"`
	// Comment is free text, e.g. the event-log file a trace was imported from.
	Comment string `json:"comment,omitempty"`
}

// Record is one line after the header. Type says which of the fields below are used.
type Record struct {
	Type string    `json:"type"`
	T    time.Time `json:"t"`
	// Src is the source the record belongs to (0 for records of the whole trace).
	Src int `json:"src,omitempty"`

	// source
	Side      string `json:"side,omitempty"`
	Transport string `json:"transport,omitempty"`
	Endpoint  string `json:"endpoint,omitempty"`
	Peer      string `json:"peer,omitempty"`
	Process   string `json:"process,omitempty"`
	Case      string `json:"case,omitempty"`
	Device    string `json:"device,omitempty"`

	// report
	From string `json:"from,omitempty"`
	Hex  *Bytes `json:"hex,omitempty"`

	// exchange
	N          int      `json:"n,omitempty"` // sequence number of the exchange within its source
	CID        string   `json:"cid,omitempty"`
	Request    *Message `json:"request,omitempty"`
	Response   *Message `json:"response,omitempty"`
	Keepalives int      `json:"keepalives,omitempty"`
	// KeepaliveStatus is the status of the last keepalive: "PROCESSING" or "UPNEEDED".
	KeepaliveStatus string `json:"keepalive_status,omitempty"`
	Cancelled       bool   `json:"cancelled,omitempty"`
	// DurationUS is the time from the request's last report to the response's, in microseconds.
	DurationUS int64 `json:"duration_us,omitempty"`

	// event
	EventID     int               `json:"event_id,omitempty"`
	EventName   string            `json:"event_name,omitempty"`
	Known       bool              `json:"known,omitempty"`
	Transaction string            `json:"transaction,omitempty"`
	Fields      map[string]string `json:"fields,omitempty"`

	// mark, note, end; Error on an exchange or event
	Text  string `json:"text,omitempty"`
	Error string `json:"error,omitempty"`
	// Records is the number of records before an end record, to tell a complete trace.
	Records int `json:"records,omitempty"`
}

// Message is one reassembled CTAPHID message, decoded.
type Message struct {
	T   time.Time `json:"t"`
	CID string    `json:"cid,omitempty"`
	// HID is the CTAPHID command: "CBOR", "MSG", "INIT", "PING", "ERROR", … (spec names without
	// the CTAPHID_ prefix), or "-" for a message that came without framing (an event log).
	HID string `json:"hid"`
	Len int    `json:"len"`
	// Hex is the payload; redacted bytes are "xx".
	Hex *Bytes `json:"hex,omitempty"`

	// Command is the CTAP2 command of a CBOR request ("authenticatorGetAssertion"), the U2F
	// instruction of a MSG request ("U2F_AUTHENTICATE"), or what the CTAPHID command carried.
	Command string `json:"command,omitempty"`
	// Code is the CTAP2 command byte of a request or the status byte of a response.
	Code *int `json:"code,omitempty"`
	// Status is the CTAP2 status of a response ("CTAP2_OK"), the U2F status word
	// ("SW_NO_ERROR 9000") or the CTAPHID error ("ERR_INVALID_SEQ").
	Status string `json:"status,omitempty"`
	// Diag is the CBOR body in diagnostic notation (RFC 8949 §8) with parameter names as
	// /comments/; secrets appear as <redacted N bytes>.
	Diag string `json:"diag,omitempty"`
	// Summary is a one-line reading of what Diag cannot show (authData fields, an INIT answer,
	// a U2F APDU).
	Summary string `json:"summary,omitempty"`
	// Error says why the payload could not be decoded, or "status byte inferred" notes.
	Error string `json:"error,omitempty"`
}

// Span is a half-open byte range [Start, End).
type Span struct{ Start, End int }

// Bytes is binary data in a trace: lowercase hex in JSON, "xx" standing for each redacted byte.
// B holds zero for a redacted byte.
type Bytes struct {
	B        []byte
	Redacted []Span // sorted, non-overlapping
}

// IsRedacted reports whether byte i was redacted.
func (b *Bytes) IsRedacted(i int) bool {
	for _, s := range b.Redacted {
		if i >= s.Start && i < s.End {
			return true
		}
	}
	return false
}

// String renders the hex form.
func (b *Bytes) String() string {
	var sb strings.Builder
	sb.Grow(2 * len(b.B))
	last := 0
	for _, s := range b.Redacted {
		sb.WriteString(hex.EncodeToString(b.B[last:s.Start]))
		sb.WriteString(strings.Repeat("xx", s.End-s.Start))
		last = s.End
	}
	sb.WriteString(hex.EncodeToString(b.B[last:]))
	return sb.String()
}

// MarshalJSON writes the hex form as a JSON string.
func (b *Bytes) MarshalJSON() ([]byte, error) {
	s := b.String()
	out := make([]byte, 0, len(s)+2)
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"'), nil
}

var errHex = errors.New("not hex (pairs of 0-9a-f, or xx for a redacted byte)")

// UnmarshalJSON reads the hex form.
func (b *Bytes) UnmarshalJSON(data []byte) error {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return errHex
	}
	s := data[1 : len(data)-1]
	if len(s)%2 != 0 {
		return fmt.Errorf("%w: odd length %d", errHex, len(s))
	}
	b.B = make([]byte, len(s)/2)
	b.Redacted = nil
	for i := 0; i < len(s); i += 2 {
		if s[i] == 'x' && s[i+1] == 'x' {
			n := len(b.Redacted)
			if n > 0 && b.Redacted[n-1].End == i/2 {
				b.Redacted[n-1].End++
			} else {
				b.Redacted = append(b.Redacted, Span{i / 2, i/2 + 1})
			}
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return fmt.Errorf("%w: %q at offset %d", errHex, s[i:i+2], i)
		}
		b.B[i/2] = hi<<4 | lo
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// newBytes copies data and zeroes the redacted spans (which must be sorted and inside data).
func newBytes(data []byte, redacted []Span) *Bytes {
	b := &Bytes{B: append([]byte(nil), data...), Redacted: redacted}
	for _, s := range redacted {
		clear(b.B[s.Start:s.End])
	}
	return b
}

// mergeSpans sorts spans, clips them to [0,n) and merges overlapping or touching ones.
func mergeSpans(spans []Span, n int) []Span {
	var out []Span
	for _, s := range sortSpans(spans) {
		s.Start, s.End = max(s.Start, 0), min(s.End, n)
		if s.End <= s.Start {
			continue
		}
		if k := len(out); k > 0 && s.Start <= out[k-1].End {
			out[k-1].End = max(out[k-1].End, s.End)
			continue
		}
		out = append(out, s)
	}
	return out
}

func sortSpans(spans []Span) []Span {
	out := append([]Span(nil), spans...)
	for i := 1; i < len(out); i++ { // insertion sort: a message has a handful of secrets
		for j := i; j > 0 && out[j].Start < out[j-1].Start; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}
