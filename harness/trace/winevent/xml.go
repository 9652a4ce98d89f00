package winevent

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// MaxEvents bounds how many events one export may hold, so a hostile file cannot exhaust memory
// through the importer's per-event bookkeeping.
const MaxEvents = 1 << 20

// SyntaxError is an export that cannot be read, with the line where reading stopped.
type SyntaxError struct {
	Line int
	Err  error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("event log line %d: %v", e.Line, e.Err) }

// Unwrap returns the cause.
func (e *SyntaxError) Unwrap() error { return e.Err }

// The XML of one event (the schema http://schemas.microsoft.com/win/2004/08/events/event).
type xmlEvent struct {
	System struct {
		Provider struct {
			Name string `xml:"Name,attr"`
		} `xml:"Provider"`
		EventID     string `xml:"EventID"`
		Level       string `xml:"Level"`
		TimeCreated struct {
			SystemTime string `xml:"SystemTime,attr"`
		} `xml:"TimeCreated"`
		EventRecordID string `xml:"EventRecordID"`
		Execution     struct {
			ProcessID string `xml:"ProcessID,attr"`
			ThreadID  string `xml:"ThreadID,attr"`
		} `xml:"Execution"`
		Channel  string `xml:"Channel"`
		Computer string `xml:"Computer"`
	} `xml:"System"`
	EventData struct {
		Data []struct {
			Name  string `xml:"Name,attr"`
			Value string `xml:",chardata"`
		} `xml:"Data"`
	} `xml:"EventData"`
	UserData struct {
		Inner []byte `xml:",innerxml"`
	} `xml:"UserData"`
	RenderingInfo struct {
		Message string `xml:"Message"`
	} `xml:"RenderingInfo"`
}

// Parse reads an events file: EVTX, or an XML export in UTF-8 or UTF-16 (with its byte-order
// mark, as PowerShell redirection and Event Viewer write it).
func Parse(data []byte) ([]Event, error) {
	if IsEVTX(data) {
		return parseEVTX(data)
	}
	data = toUTF8(data)
	if !bytes.Contains(data[:min(len(data), 4096)], []byte("<")) {
		return nil, ErrUnknownFormat
	}
	return ParseXML(bytes.NewReader(data))
}

// toUTF8 converts UTF-16 (with a byte-order mark) to UTF-8 and drops a UTF-8 byte-order mark.
func toUTF8(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		be := b[0] == 0xFE
		b = b[2:]
		u := make([]uint16, len(b)/2)
		for i := range u {
			if be {
				u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
			} else {
				u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
			}
		}
		return []byte(string(utf16.Decode(u)))
	}
	return b
}

// ParseXML reads an XML export: a sequence of <Event> elements, with or without an enclosing
// root element (wevtutil qe writes none; Event Viewer's "Save as XML" writes <Events>). A
// malformed document is a *SyntaxError naming the line; the events read before it are returned.
func ParseXML(r io.Reader) ([]Event, error) {
	dec := xml.NewDecoder(r)
	dec.Strict = true
	dec.CharsetReader = func(label string, in io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-16", "utf-16le", "unicode", "utf-8", "us-ascii":
			return in, nil // Parse has already converted UTF-16 to UTF-8
		}
		return nil, fmt.Errorf("unsupported encoding %q", label)
	}
	var events []Event
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return events, nil
		}
		if err != nil {
			line, _ := dec.InputPos()
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				line = se.Line
			}
			return events, &SyntaxError{Line: line, Err: err}
		}
		start, ok := tok.(xml.StartElement)
		if !ok || start.Name.Local != "Event" {
			continue // the root element, the XML declaration, whitespace
		}
		line, _ := dec.InputPos()
		var xe xmlEvent
		if err := dec.DecodeElement(&xe, &start); err != nil {
			l, _ := dec.InputPos()
			return events, &SyntaxError{Line: l, Err: err}
		}
		ev, err := xe.event(line)
		if err != nil {
			return events, &SyntaxError{Line: line, Err: err}
		}
		if len(events) >= MaxEvents {
			return events, &SyntaxError{Line: line, Err: fmt.Errorf("more than %d events", MaxEvents)}
		}
		events = append(events, ev)
	}
}

func (xe *xmlEvent) event(line int) (Event, error) {
	s := &xe.System
	id, err := strconv.Atoi(strings.TrimSpace(s.EventID))
	if err != nil {
		return Event{}, fmt.Errorf("event without a numeric EventID (%q)", s.EventID)
	}
	ev := Event{ID: id, Provider: s.Provider.Name, Channel: s.Channel, Computer: s.Computer, Line: line,
		Message: strings.TrimSpace(xe.RenderingInfo.Message)}
	if t := strings.TrimSpace(s.TimeCreated.SystemTime); t != "" {
		if ev.Time, err = time.Parse(time.RFC3339Nano, t); err != nil {
			return Event{}, fmt.Errorf("event %d: TimeCreated %q: %v", id, t, err)
		}
	}
	ev.PID, _ = strconv.Atoi(s.Execution.ProcessID)
	ev.TID, _ = strconv.Atoi(s.Execution.ThreadID)
	ev.RecordID, _ = strconv.ParseUint(strings.TrimSpace(s.EventRecordID), 10, 64)
	ev.Level, _ = strconv.Atoi(strings.TrimSpace(s.Level))
	for i, d := range xe.EventData.Data {
		name := d.Name
		if name == "" {
			name = "Data" + strconv.Itoa(i+1) // classic events have unnamed <Data>
		}
		ev.Fields = append(ev.Fields, Field{Name: name, Value: strings.TrimSpace(d.Value)})
	}
	if inner := bytes.TrimSpace(xe.UserData.Inner); len(inner) > 0 {
		ev.Fields = append(ev.Fields, Field{Name: "UserData", Value: string(inner)})
	}
	return ev, nil
}
