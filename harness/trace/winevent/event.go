// Package winevent imports exports of the Microsoft-Windows-WebAuthN/Operational event log
// (XML from `wevtutil qe … /f:xml`, or an .evtx file) into fidolab traces: each operation
// (joined on TransactionId) becomes a source with the process that asked and the key that
// answered, each CTAP request and answer an exchange decoded like a recorded one (secrets
// redacted), and every other event, known or not, an event record.
//
// Event IDs and fields follow docs/reference/windows-webauthn-eventlog.md; where a layout
// is unconfirmed (a response with or without its status byte) both are accepted.
package winevent

import (
	"strings"
	"time"
)

// Provider is the WebAuthN provider's name.
const Provider = "Microsoft-Windows-WebAuthN"

// Event is one event as an export renders it: System values and the EventData fields as text,
// in the XML rendering (binary as uppercase hex, GUIDs as {lowercase}, booleans true/false).
type Event struct {
	ID       int
	Provider string
	Channel  string
	Computer string
	Time     time.Time
	PID, TID int
	RecordID uint64
	Level    int
	Fields   []Field
	// Message is the rendered message, when the export has one (RenderedXml).
	Message string
	// Line is where the event starts in an XML export (0 for EVTX).
	Line int
}

// Field is one EventData value.
type Field struct{ Name, Value string }

// Get returns the value of the field named name (case-insensitive) and whether it is there.
func (e *Event) Get(name string) (string, bool) {
	for _, f := range e.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value, true
		}
	}
	return "", false
}

// Transaction returns the event's TransactionId, normalised to {lowercase}, or "".
func (e *Event) Transaction() string {
	v, ok := e.Get("TransactionId")
	if !ok {
		return ""
	}
	return normGUID(v)
}

func normGUID(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	v = strings.TrimSuffix(strings.TrimPrefix(v, "{"), "}")
	if v == "" || v == "00000000-0000-0000-0000-000000000000" {
		return ""
	}
	return "{" + v + "}"
}
