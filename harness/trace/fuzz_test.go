package trace

import (
	"bytes"
	"testing"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// FuzzDecode feeds arbitrary payloads to the decoder as every kind of message: no panic, every
// redacted span inside the payload, and the walker's item sizes agree with the codec's.
func FuzzDecode(f *testing.F) {
	f.Add(byte(0x06), []byte{0x06, 0xa2, 0x01, 0x02, 0x02, 0x05})
	f.Add(byte(0x02), []byte{0x02, 0xa1, 0x06, 0x58, 0x20, 0x00})
	f.Add(byte(0x00), []byte{0x00, 0xa1, 0x02, 0x58, 0x25})
	f.Add(byte(0x01), []byte{0x01, 0xbf, 0x01, 0x9f, 0x01, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, cmd byte, payload []byte) {
		for _, keep := range []bool{false, true} {
			d := Decoder{KeepSecrets: keep}
			now := time.Unix(0, 0)
			req, rs := d.Request(now, 1, ctaphid.CmdCBOR, payload)
			resp, ss := d.Response(now, 1, ctaphid.CmdCBOR, payload, &Message{HID: "CBOR", Code: intPtr(int(cmd))})
			d.Request(now, 1, ctaphid.CmdMsg, payload)
			d.Response(now, 1, ctaphid.CmdMsg, payload, &Message{HID: "MSG", Code: intPtr(int(cmd))})
			d.Response(now, 1, ctaphid.CmdInit, payload, nil)
			for _, spans := range [][]Span{rs, ss} {
				for _, s := range spans {
					if s.Start < 0 || s.End > len(payload) || s.Start >= s.End {
						t.Fatalf("span %v outside a %d-byte payload", s, len(payload))
					}
				}
				if keep && len(spans) > 0 {
					t.Fatal("secrets kept, yet spans redacted")
				}
			}
			if req.Len != len(payload) || resp.Len != len(payload) || len(req.Hex.B) != len(payload) {
				t.Fatal("message does not describe its payload")
			}
		}
		if len(payload) > 1 {
			n, err := walk(payload[1:], 1)
			if n != nil && (n.start != 1 || n.end > len(payload)) {
				t.Fatalf("node %d..%d outside the payload", n.start, n.end)
			}
			if n != nil && err == nil && n.end != len(payload) {
				t.Fatalf("walker measured %d bytes, the codec %d", n.end-1, len(payload)-1)
			}
		}
		_ = Diag(payload)
	})
}

// FuzzRecorder feeds arbitrary reports in both directions to a stream: the recorder never
// panics, and what it writes reads back as a valid trace.
func FuzzRecorder(f *testing.F) {
	init := make([]byte, 64)
	copy(init, []byte{0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add(append(append([]byte{}, init...), init...), []byte{0, 1})
	cbor := make([]byte, 64)
	copy(cbor, []byte{0, 0, 0, 1, 0x90, 0x00, 0x50, 0x06, 0xa1})
	cont := make([]byte, 64)
	copy(cont, []byte{0, 0, 0, 1, 0x00})
	f.Add(append(append([]byte{}, cbor...), cont...), []byte{0, 0})
	f.Fuzz(func(t *testing.T, data []byte, dirs []byte) {
		var buf bytes.Buffer
		rec, err := NewRecorder(&buf, Options{Now: func() time.Time { return time.Unix(1, 0) }})
		if err != nil {
			t.Fatal(err)
		}
		s := rec.Source(Source{Side: SideHost})
		for i := 0; len(data) > 0; i++ {
			n := min(len(data), 64)
			if i < len(dirs) && dirs[i]&0x80 != 0 {
				n = min(len(data), int(dirs[i]&0x7f)) // an odd-sized write now and then
			}
			rep := data[:n]
			data = data[n:]
			if i < len(dirs) && dirs[i]&1 == 1 {
				s.DeviceReport(rep)
			} else {
				s.HostReport(rep)
			}
		}
		if err := rec.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := NewReader(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range r.All() {
			if err != nil {
				t.Fatalf("recorded trace does not read: %v", err)
			}
		}
	})
}
