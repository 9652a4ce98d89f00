package trace

import (
	"encoding/hex"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Records are written by hand rather than through encoding/json: the recorder writes several
// records per CTAP request, and reflection plus re-validating the hex of every report made a
// traced getAssertion several times slower. The output is the JSON that encoding/json would
// write for the struct tags in record.go (same names, same omitempty rules), which the Reader
// reads back with encoding/json.

func appendRecord(b []byte, r *Record) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, r.Type)
	b = append(b, `,"t":`...)
	b = appendTime(b, r.T)
	b = appendInt(b, "src", int64(r.Src))
	b = appendStr(b, "side", r.Side)
	b = appendStr(b, "transport", r.Transport)
	b = appendStr(b, "endpoint", r.Endpoint)
	b = appendStr(b, "peer", r.Peer)
	b = appendStr(b, "process", r.Process)
	b = appendStr(b, "case", r.Case)
	b = appendStr(b, "device", r.Device)
	b = appendStr(b, "from", r.From)
	if r.Hex != nil {
		b = append(b, `,"hex":`...)
		b = appendBytes(b, r.Hex)
	}
	b = appendInt(b, "n", int64(r.N))
	b = appendStr(b, "cid", r.CID)
	if r.Request != nil {
		b = append(b, `,"request":`...)
		b = appendMessage(b, r.Request)
	}
	if r.Response != nil {
		b = append(b, `,"response":`...)
		b = appendMessage(b, r.Response)
	}
	b = appendInt(b, "keepalives", int64(r.Keepalives))
	b = appendStr(b, "keepalive_status", r.KeepaliveStatus)
	if r.Cancelled {
		b = append(b, `,"cancelled":true`...)
	}
	b = appendInt(b, "duration_us", r.DurationUS)
	b = appendInt(b, "event_id", int64(r.EventID))
	b = appendStr(b, "event_name", r.EventName)
	if r.Known {
		b = append(b, `,"known":true`...)
	}
	b = appendStr(b, "transaction", r.Transaction)
	if len(r.Fields) > 0 {
		keys := make([]string, 0, len(r.Fields))
		for k := range r.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"fields":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, r.Fields[k])
		}
		b = append(b, '}')
	}
	b = appendStr(b, "text", r.Text)
	b = appendStr(b, "error", r.Error)
	b = appendInt(b, "records", int64(r.Records))
	return append(b, '}')
}

func appendMessage(b []byte, m *Message) []byte {
	b = append(b, `{"t":`...)
	b = appendTime(b, m.T)
	b = appendStr(b, "cid", m.CID)
	b = append(b, `,"hid":`...)
	b = appendString(b, m.HID)
	b = append(b, `,"len":`...)
	b = strconv.AppendInt(b, int64(m.Len), 10)
	if m.Hex != nil {
		b = append(b, `,"hex":`...)
		b = appendBytes(b, m.Hex)
	}
	b = appendStr(b, "command", m.Command)
	if m.Code != nil {
		b = append(b, `,"code":`...)
		b = strconv.AppendInt(b, int64(*m.Code), 10)
	}
	b = appendStr(b, "status", m.Status)
	b = appendStr(b, "diag", m.Diag)
	b = appendStr(b, "summary", m.Summary)
	b = appendStr(b, "error", m.Error)
	return append(b, '}')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendStr appends ,"key":"value" unless value is empty.
func appendStr(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendInt appends ,"key":v unless v is zero.
func appendInt(b []byte, key string, v int64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendBytes(b []byte, x *Bytes) []byte {
	b = append(b, '"')
	last := 0
	for _, s := range x.Redacted {
		b = hex.AppendEncode(b, x.B[last:s.Start])
		for range s.End - s.Start {
			b = append(b, 'x', 'x')
		}
		last = s.End
	}
	b = hex.AppendEncode(b, x.B[last:])
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control characters escaped,
// invalid UTF-8 replaced by U+FFFD, as encoding/json does (without its HTML escaping).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
