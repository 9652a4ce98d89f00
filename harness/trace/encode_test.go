package trace

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAppendRecordIsEncodingJSON checks the hand-written encoder against encoding/json: the
// same record, every field set, reads back the same, and strings survive every escape.
func TestAppendRecordIsEncodingJSON(t *testing.T) {
	t.Parallel()
	code := 0x2e
	m := &Message{T: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), CID: "0000000a", HID: "CBOR", Len: 3,
		Hex: &Bytes{B: []byte{1, 0, 3}, Redacted: []Span{{1, 2}}}, Command: "c", Code: &code, Status: "s",
		Diag: "{1 /x/: \"q\\\"\"}", Summary: "<redacted 3 bytes> & more", Error: "e"}
	r := &Record{Type: TypeExchange, T: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Src: 3, Side: "s", Transport: "t",
		Endpoint: "e", Peer: "p", Process: "LogonUI.exe", Case: "c", Device: "d", From: "host",
		Hex: &Bytes{B: []byte{0xff}}, N: 9, CID: "ffffffff", Request: m, Response: m, Keepalives: 2,
		KeepaliveStatus: "UPNEEDED", Cancelled: true, DurationUS: 17, EventID: 2106, EventName: "n", Known: true,
		Transaction: "{x}", Fields: map[string]string{"b": "2", "a": "line\nbreak\ttab\x01\u2028 é \xff"},
		Text: "t", Error: "err", Records: 4}
	var got Record
	require.NoError(t, json.Unmarshal(appendRecord(nil, r), &got))
	require.Equal(t, r.Fields["b"], got.Fields["b"])
	require.Equal(t, "line\nbreak\ttab\x01\u2028 é \ufffd", got.Fields["a"])
	got.Fields, r.Fields = nil, nil
	require.Equal(t, r, &got)
	require.Equal(t, `{"type":"end","t":"0001-01-01T00:00:00Z"}`, string(appendRecord(nil, &Record{Type: TypeEnd})))
}
