package uhid

import (
	"encoding/binary"
	"testing"
)

// FuzzParseEvent: any bytes from /dev/uhid parse or fail cleanly, and what parses stays inside the
// buffer and within the ABI's limits.
func FuzzParseEvent(f *testing.F) {
	f.Add(event(EventOutput, func(b []byte) { binary.LittleEndian.PutUint16(b[4+4096:], 65); b[4+4096+2] = 1 }))
	f.Add(event(EventStart, nil)[:12])
	f.Add(event(EventSetReport, func(b []byte) { binary.LittleEndian.PutUint16(b[10:], 65) })[:12+65])
	f.Add(event(EventGetReport, nil)[:10])
	f.Add([]byte{5, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			return
		}
		if len(ev.Data) > DataMax || len(ev.Data) > len(b) {
			t.Fatalf("data of %d bytes from a %d-byte event", len(ev.Data), len(b))
		}
		if ev.Type != EventType(binary.LittleEndian.Uint32(b)) {
			t.Fatalf("type %v from %x", ev.Type, b[:4])
		}
		// A parsed output report either is a FIDO report or is dropped; it never panics.
		_, _ = ctapReport(ev.Data, 64)
	})
}
