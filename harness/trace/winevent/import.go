package winevent

import (
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/trace"
)

// Options configure Import.
type Options struct {
	// KeepSecrets keeps secrets in the CTAP messages (--trace-secrets).
	KeepSecrets bool
	// Processes names the processes the support engineer knows (PID → image name, e.g. from the
	// Feedback Hub report); others are inferred from what they asked and marked so.
	Processes map[int]string
	// Comment goes into the trace header (e.g. the file imported).
	Comment string
	// Now stamps the header; nil means time.Now.
	Now func() time.Time
}

// Stats says what Import did.
type Stats struct {
	Events       int
	Transactions int
	Exchanges    int
	// Unknown counts, per event ID, the events fidolab does not understand: they are in the trace
	// as event records with known=false, and the CLI lists them on stderr.
	Unknown map[int]int
	// Foreign counts events of other providers (kept the same way).
	Foreign int
}

// eventNames are the WebAuthN events fidolab knows (reference table), by ID.
var eventNames = map[int]string{
	1000: "Ctap MakeCredential started", 1001: "Ctap MakeCredential completed", 1002: "Ctap MakeCredential completed with error",
	1003: "Ctap GetAssertion started", 1004: "Ctap GetAssertion completed", 1005: "Ctap GetAssertion completed with error",
	1006: "SendCommand started", 1007: "SendCommand completed", 1008: "SendCommand completed with error",
	1020: "Ngc MakeCredential started", 1021: "Ngc MakeCredential completed", 1022: "Ngc MakeCredential error",
	1023: "Ngc GetAssertion started", 1024: "Ngc GetAssertion completed", 1025: "Ngc GetAssertion error",
	1040: "Ngc MakeCredential request", 1041: "Ngc MakeCredential response", 1042: "Ngc GetAssertion request",
	1043: "Ngc GetAssertion response", 1050: "Remote RPC request", 1052: "Remote RPC response",
	1060: "WebAuthN error", 1070: "IsUserVerifyingPlatformAuthenticatorAvailable", 1071: "ApiVersion",
	1100: "Cbor decode error", 1101: "Cbor encode MakeCredential request", 1102: "Cbor decode MakeCredential response",
	1103: "Cbor encode GetAssertion request", 1104: "Cbor decode GetAssertion response",
	2000: "Service started", 2001: "Service stopped",
	2100: "Ctap command started", 2102: "Ctap command completed", 2103: "Ctap command error",
	2104: "Ctap device info", 2105: "Ctap function warning", 2106: "Ctap name/value",
	2110: "Ctap device state info", 2111: "Ctap device change notify",
	2200: "Usb provider started", 2201: "Usb provider completed", 2202: "Usb provider error", 2203: "Usb provider warning",
	2210: "Usb device thread started", 2211: "Usb device thread completed", 2212: "Usb device thread error",
	2220: "Usb add device", 2221: "Usb remove device", 2222: "Usb device changes", 2223: "Usb connect", 2224: "Usb connect error",
	2225: "Ctap Usb Send Receive", 2226: "Ctap Usb Send Receive with error",
	2250: "Ble provider started", 2253: "Ble provider warning", 2270: "Ble function warning",
	2300: "Nfc provider started", 2303: "Nfc provider warning", 2321: "Nfc skip reader",
	2327: "SCardTransmit", 2328: "SCardTransmit with error",
	2329: "Hybrid process started", 2331: "Hybrid process error", 2332: "Hybrid write message",
	2333: "Hybrid read message", 2334: "Hybrid setup started", 2335: "Hybrid setup completed",
}

// secretFields are EventData fields that carry whole CTAP messages: they become exchanges, or
// are redacted when the layout is unknown.
var secretFields = []string{"Request", "Response", "Encoded", "RemoteRpcRequest", "RemoteRpcResponse"}

// txn is one operation: the events sharing a TransactionId.
type txn struct {
	id      string
	events  []*Event
	src     *trace.Stream
	pending map[int][]*Event // request events waiting for their response, by request event ID
}

// Import writes the events as a trace to w. Events are ordered by time (then record number)
// whatever order the export had.
func Import(events []Event, w io.Writer, o Options) (Stats, error) {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	st := Stats{Events: len(events), Unknown: map[int]int{}}
	rec, err := trace.NewRecorder(w, trace.Options{KeepSecrets: o.KeepSecrets, Now: now,
		Tool: "fidolab trace import", Comment: o.Comment})
	if err != nil {
		return st, err
	}
	order := make([]*Event, len(events))
	for i := range events {
		order[i] = &events[i]
		if events[i].Time.IsZero() {
			// Every trace record has a time; an event without one is dated at the epoch, first.
			events[i].Time = time.Unix(0, 0).UTC()
			events[i].Fields = append(events[i].Fields, Field{Name: "fidolab", Value: "the event has no TimeCreated"})
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if !a.Time.Equal(b.Time) {
			return a.Time.Before(b.Time)
		}
		return a.RecordID < b.RecordID
	})

	txns := map[string]*txn{}
	var txnOrder []*txn
	lastByPID := map[int]*txn{}
	for _, e := range order {
		if e.Provider != "" && e.Provider != Provider {
			continue
		}
		if id := e.Transaction(); id != "" {
			t := txns[id]
			if t == nil {
				t = &txn{id: id, pending: map[int][]*Event{}}
				txns[id] = t
				txnOrder = append(txnOrder, t)
			}
			t.events = append(t.events, e)
		}
	}
	st.Transactions = len(txnOrder)
	sources := map[string]trace.Source{}
	for _, t := range txnOrder {
		sources[t.id] = describe(t, o.Processes)
	}

	im := &importer{rec: rec, o: o, st: &st}
	for _, e := range order {
		if e.Provider != "" && e.Provider != Provider {
			st.Foreign++
			im.event(e, 0, false, "event of provider "+e.Provider)
			continue
		}
		t := txns[e.Transaction()]
		if t == nil && (e.ID == 2106 || e.ID == 2105) {
			t = lastByPID[e.PID] // name/value and warnings carry no TransactionId: the process's operation
		}
		if t != nil {
			lastByPID[e.PID] = t
			if t.src == nil {
				t.src = rec.SourceAt(e.Time, sources[t.id])
			}
		}
		im.handle(e, t)
	}
	for _, t := range txnOrder {
		for _, reqs := range t.pending {
			for _, q := range reqs {
				im.exchange(t, q, nil, "the log has no response event for this request")
			}
		}
	}
	if err := rec.Close(); err != nil {
		return st, err
	}
	return st, nil
}

type importer struct {
	rec *trace.Recorder
	o   Options
	st  *Stats
}

func srcOf(t *txn) (int, *trace.Stream) {
	if t == nil || t.src == nil {
		return 0, nil
	}
	return t.src.ID(), t.src
}

// handle turns one WebAuthN event into trace records.
func (im *importer) handle(e *Event, t *txn) {
	switch e.ID {
	case 1101, 1103:
		if t != nil {
			t.pending[e.ID] = append(t.pending[e.ID], e)
			return
		}
		im.exchange(nil, e, nil, "")
	case 1102, 1104:
		var q *Event
		if t != nil && len(t.pending[e.ID-1]) > 0 {
			q = t.pending[e.ID-1][0]
			t.pending[e.ID-1] = t.pending[e.ID-1][1:]
		}
		im.exchange(t, q, e, "")
	case 2100:
		if req, ok := binaryField(e, "Request"); ok && looksCTAP(req) && t != nil {
			t.pending[e.ID] = append(t.pending[e.ID], e)
			return
		}
		im.event(e, srcID(t), true, "")
	case 2102, 2103:
		if t != nil && len(t.pending[2100]) > 0 {
			q := t.pending[2100][0]
			t.pending[2100] = t.pending[2100][1:]
			errText := ""
			if e.ID == 2103 {
				errText = errorText(e)
				im.exchange(t, q, nil, errText)
				return
			}
			im.exchange(t, q, e, "")
			return
		}
		im.event(e, srcID(t), true, "")
	case 2225, 2226, 2327, 2328:
		im.exchange(t, e, e, "")
	default:
		_, known := eventNames[e.ID]
		if !known {
			im.st.Unknown[e.ID]++
		}
		im.event(e, srcID(t), known, "")
	}
}

func srcID(t *txn) int { id, _ := srcOf(t); return id }

// event writes a non-exchange event. Binary fields that may hold CTAP messages are decoded as
// CBOR (known events) or redacted (unknown layouts), never copied raw unless secrets are kept.
func (im *importer) event(e *Event, src int, known bool, why string) {
	r := &trace.Record{Type: trace.TypeEvent, T: e.Time, Src: src, EventID: e.ID, EventName: eventNames[e.ID],
		Known: known, Transaction: e.Transaction(), Fields: map[string]string{}, Text: why}
	if r.EventName == "" {
		r.EventName = "(unknown event)"
	}
	for _, f := range e.Fields {
		v := f.Value
		if isSecretField(f.Name) && !im.o.KeepSecrets {
			if b, err := parseHex(v); err == nil && len(b) > 0 {
				if known {
					v = fmt.Sprintf("%d bytes: %s", len(b), trace.Diag(b))
				} else {
					v = fmt.Sprintf("<redacted %d bytes: unknown event layout; --trace-secrets keeps it>", len(b))
				}
			}
		}
		r.Fields[f.Name] = v
	}
	if e.PID != 0 {
		r.Fields["ProcessID"] = strconv.Itoa(e.PID)
	}
	if e.Message != "" {
		r.Fields["Message"] = e.Message
	}
	if v := errorText(e); v != "" {
		r.Error = v
	}
	_ = im.rec.Writer().Write(r)
}

func isSecretField(name string) bool {
	for _, s := range secretFields {
		if strings.EqualFold(name, s) {
			return true
		}
	}
	return false
}

// exchange writes one request/response pair from the events that carry them (q the request
// event, a the response event; either may be nil, or both the same event for 2225/2327).
func (im *importer) exchange(t *txn, q, a *Event, errText string) {
	_, stream := srcOf(t)
	if stream == nil {
		first := q
		if first == nil {
			first = a
		}
		stream = im.rec.SourceAt(first.Time, trace.Source{Side: trace.SideEventLog, Transport: "windows-eventlog",
			Process: process(first.PID, im.o.Processes, "")})
	}
	u := trace.Unframed{Fields: map[string]string{}}
	var ids []string
	for _, e := range []*Event{q, a} {
		if e == nil || (e == a && a == q) {
			continue
		}
		ids = append(ids, strconv.Itoa(e.ID))
	}
	if q != nil && q == a {
		ids = []string{strconv.Itoa(q.ID)}
	}
	u.Fields["events"] = strings.Join(ids, "+")
	if q != nil {
		u.ReqT, u.Transaction = q.Time, q.Transaction()
		copyFields(u.Fields, q)
	}
	if a != nil {
		u.RespT = a.Time
		if u.Transaction == "" {
			u.Transaction = a.Transaction()
		}
		copyFields(u.Fields, a)
	}
	switch {
	case q != nil && q == a && (q.ID == 2225 || q.ID == 2226):
		u.Req, _ = binaryField(q, "Request")
		u.Resp, _ = binaryField(q, "Response")
		u.HID = hidCommand(q, "RequestCommand")
		u.RespHID = hidCommand(q, "ResponseCommand")
		if q.ID == 2226 {
			u.Error = errorText(q)
		}
	case q != nil && q == a: // 2327/2328: NFC APDUs
		req, _ := binaryField(q, "Request")
		resp, _ := binaryField(q, "Response")
		u.Req, u.Resp, u.HID, u.RespHID, u.RespNote = nfcMessages(req, resp)
		if q.ID == 2328 {
			u.Error = errorText(q)
		}
	default:
		if q != nil {
			u.Req, _ = binaryField(q, "Request")
		}
		if a != nil {
			resp, _ := binaryField(a, "Response")
			u.Resp, u.RespNote = withStatus(resp)
		}
	}
	if u.Req == nil && u.Resp == nil {
		// Nothing to decode: the events stay events, saying why.
		why := strings.TrimPrefix(errText+"; the event carries no request or response bytes", "; ")
		if q != nil {
			im.event(q, stream.ID(), true, why)
		}
		if a != nil && a != q {
			im.event(a, stream.ID(), true, why)
		}
		return
	}
	if errText != "" {
		u.Error = strings.TrimPrefix(u.Error+"; "+errText, "; ")
	}
	if u.Req == nil && q == nil {
		u.ReqT = u.RespT
	}
	if err := stream.Exchange(u); err == nil {
		im.st.Exchanges++
	}
}

// copyFields keeps an event's descriptive fields on the exchange (not the message bytes).
func copyFields(dst map[string]string, e *Event) {
	for _, f := range e.Fields {
		if isSecretField(f.Name) || strings.EqualFold(f.Name, "TransactionId") || strings.HasSuffix(f.Name, "Length") {
			continue
		}
		dst[f.Name] = f.Value
	}
	if e.PID != 0 {
		dst["ProcessID"] = strconv.Itoa(e.PID)
	}
}

// withStatus reads a CBOR-level response event's bytes, which may or may not start with the
// CTAP status byte (unconfirmed, so both are accepted): a CBOR map at the start means the status
// byte is absent and CTAP2_OK is assumed.
func withStatus(b []byte) ([]byte, string) {
	switch {
	case len(b) == 0:
		return nil, ""
	case b[0] >= 0xA0 && b[0] <= 0xBF:
		return append([]byte{byte(ctap.StatusOK)}, b...), "the event has no status byte: CTAP2_OK assumed"
	default:
		return b, ""
	}
}

// looksCTAP reports whether b is a CTAP2 request: a known command byte, then nothing or a map.
func looksCTAP(b []byte) bool {
	if len(b) == 0 || ctap.Command(b[0]).String() == fmt.Sprintf("command_0x%02X", b[0]) {
		return false
	}
	return len(b) == 1 || (b[1] >= 0xA0 && b[1] <= 0xBF)
}

// nfcMessages unwraps NFCCTAP_MSG APDUs (CLA 80, INS 10: CTAP2 CBOR in the data) and treats any
// other APDU as CTAP1/U2F.
func nfcMessages(req, resp []byte) (q, a []byte, hid, rhid byte, note string) {
	const cmdMsg, cmdCBOR = 0x83, 0x90
	if len(req) >= 5 && req[0] == 0x80 && req[1] == 0x10 {
		lc, data := int(req[4]), req[5:]
		if lc == 0 && len(data) >= 2 { // extended length
			lc, data = int(data[0])<<8|int(data[1]), data[2:]
		}
		if lc <= len(data) {
			q = data[:lc]
		}
		if len(resp) >= 2 {
			a = resp[:len(resp)-2]
			note = fmt.Sprintf("NFC status word %X", resp[len(resp)-2:])
		}
		return q, a, cmdCBOR, cmdCBOR, note
	}
	return req, resp, cmdMsg, cmdMsg, ""
}

// hidCommand reads a CTAPHID command field (UInt8: "144", "0x90").
func hidCommand(e *Event, name string) byte {
	v, ok := e.Get(name)
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(strings.TrimSpace(v), 0, 8)
	if err != nil {
		return 0
	}
	return byte(n) | 0x80
}

// binaryField reads a Binary field: hex, with or without 0x, spaces ignored.
func binaryField(e *Event, name string) ([]byte, bool) {
	v, ok := e.Get(name)
	if !ok {
		return nil, false
	}
	b, err := parseHex(v)
	if err != nil {
		return nil, false
	}
	return b, true
}

func parseHex(v string) ([]byte, error) {
	v = strings.Join(strings.Fields(v), "")
	v = strings.TrimPrefix(strings.TrimPrefix(v, "0x"), "0X")
	return hex.DecodeString(v)
}

// errorText joins the error fields of an event (Error, HResult, Win32Error, Action, Function).
func errorText(e *Event) string {
	var parts []string
	for _, n := range []string{"Action", "Function", "Location", "Error", "HResult", "Win32Error", "CborErrorString"} {
		if v, ok := e.Get(n); ok && v != "" && v != "0" && v != "0x0" {
			parts = append(parts, n+" "+v)
		}
	}
	if len(parts) == 0 {
		switch e.ID {
		case 1002, 1005, 1060, 2103, 2226, 2328, 1100, 2202, 2212, 2224:
			return "error event without error fields"
		}
		return ""
	}
	return strings.Join(parts, ", ")
}
