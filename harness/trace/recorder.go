package trace

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// Options configure a Recorder.
type Options struct {
	// KeepSecrets records secrets instead of redacting them (--trace-secrets).
	KeepSecrets bool
	// Now is the clock of the timestamps; nil means the wall clock (clock.Real). Wire it to the
	// key's or the runner's clock; a source may have a clock of its own (Source.Now).
	Now func() time.Time
	// Tool and Comment go into the header.
	Tool, Comment string
}

// Source describes one endpoint the recorder sees traffic on.
type Source struct {
	Side      string // SideDevice, SideHost, SideEventLog
	Transport string // "socket", "inproc", "uhid", "windows-eventlog", …
	Endpoint  string // an address: "unix:/run/k.sock", a device path
	Peer      string // who is on the other side, if known
	Process   string // the host process, if known (event logs)
	Case      string // the runner case the traffic belongs to
	Device    string // the key, if known (AAGUID, product)
	// Now, when set, is the clock of this source's timestamps instead of the recorder's: an
	// in-process key on a virtual clock, whose delays and keepalives take no wall time.
	Now func() time.Time
}

// Recorder turns the reports of any number of sources into one trace. It is safe for concurrent
// use: each source is a Stream, fed by the goroutines of its transport.
type Recorder struct {
	w   *Writer
	dec Decoder
	now func() time.Time

	mu      sync.Mutex
	nextSrc int
	streams map[*Stream]struct{}
}

// NewRecorder writes a trace header to w and returns a Recorder. Close it to flush and end the
// trace; w itself is not closed.
func NewRecorder(w io.Writer, o Options) (*Recorder, error) {
	now := o.Now
	if now == nil {
		now = clock.Real{}.Now
	}
	tw, err := NewWriter(w, Header{Created: now(), Tool: o.Tool, Secrets: o.KeepSecrets, Comment: o.Comment})
	if err != nil {
		return nil, err
	}
	return &Recorder{w: tw, dec: Decoder{KeepSecrets: o.KeepSecrets}, now: now, streams: map[*Stream]struct{}{}}, nil
}

// Writer returns the recorder's trace writer, for records it does not make itself.
func (r *Recorder) Writer() *Writer { return r.w }

// Decoder returns the decoder the recorder uses (with its secrets setting).
func (r *Recorder) Decoder() Decoder { return r.dec }

// Now returns the recorder's clock reading.
func (r *Recorder) Now() time.Time { return r.now() }

// Mark writes a label (a runner case or step) into the trace; src may be 0.
func (r *Recorder) Mark(src int, text string) {
	_ = r.w.Write(&Record{Type: TypeMark, T: r.now(), Src: src, Text: text})
}

// MarkCase writes a label of a runner case (the step it begins, a replug of its key), on the
// recorder's clock: `fidolab replay` replugs the key where a trace says it was replugged, and
// `fidolab trace scenario` reads which actions a case took.
func (r *Recorder) MarkCase(caseLabel, text string) {
	_ = r.w.Write(&Record{Type: TypeMark, T: r.now(), Case: caseLabel, Text: text})
}

// Source starts a new stream: a source record is written and the stream's reports are
// attributed to it.
func (r *Recorder) Source(s Source) *Stream { return r.SourceAt(r.now(), s) }

// SourceAt is Source with the source record's time given (an imported event's time).
func (r *Recorder) SourceAt(t time.Time, s Source) *Stream {
	r.mu.Lock()
	r.nextSrc++
	st := &Stream{r: r, id: r.nextSrc, pending: map[uint32][]*pending{}, now: s.Now}
	if st.now == nil {
		st.now = r.now
	}
	st.dirs[0].buf = map[uint32][]heldReport{}
	st.dirs[1].buf = map[uint32][]heldReport{}
	r.streams[st] = struct{}{}
	r.mu.Unlock()
	_ = r.w.Write(&Record{Type: TypeSource, T: t, Src: st.id, Side: s.Side, Transport: s.Transport,
		Endpoint: s.Endpoint, Peer: s.Peer, Process: s.Process, Case: s.Case, Device: s.Device})
	return st
}

// Close ends every stream (requests still waiting are written as unanswered), writes the end
// record and flushes. It returns the first write error of the whole recording.
func (r *Recorder) Close() error {
	r.mu.Lock()
	streams := make([]*Stream, 0, len(r.streams))
	for s := range r.streams {
		streams = append(streams, s)
	}
	r.mu.Unlock()
	for _, s := range streams {
		s.Closed()
	}
	return r.w.Close(r.now())
}

// Err returns the first write error so far.
func (r *Recorder) Err() error {
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	return r.w.err
}

// Stream is the traffic of one source: reports in both directions, reassembled with
// ctaphid.Reassembler and paired into exchanges by channel. It implements ctaphid.PortTap.
type Stream struct {
	r   *Recorder
	id  int
	now func() time.Time

	mu      sync.Mutex
	dirs    [2]direction // 0: from the host, 1: from the key
	pending map[uint32][]*pending
	n       int
	closed  bool
}

type direction struct {
	rx  ctaphid.Reassembler
	buf map[uint32][]heldReport // reports of the message in progress, per channel
}

type heldReport struct {
	t    time.Time
	data [ctaphid.ReportSize]byte
}

type pending struct {
	req        *Message
	keepalives int
	kaStatus   string
	cancelled  bool
}

// ID returns the stream's source number in the trace.
func (s *Stream) ID() int { return s.id }

// HostReport records a report the host sent to the key.
func (s *Stream) HostReport(rep []byte) { s.report(0, rep, s.now()) }

// DeviceReport records a report the key sent to the host.
func (s *Stream) DeviceReport(rep []byte) { s.report(1, rep, s.now()) }

// DeviceReportAt records a report the key sent to the host at time at (on the source's clock:
// the device time a ctaphid.TimedReportConn gives).
func (s *Stream) DeviceReportAt(rep []byte, at time.Time) { s.report(1, rep, at) }

// Describe records who the host is (ctaphid.PortTap).
func (s *Stream) Describe(who string) {
	_ = s.r.w.Write(&Record{Type: TypeNote, T: s.now(), Src: s.id, Peer: who, Text: "peer: " + who})
}

// Closed ends the stream: messages in progress and requests without an answer are written as
// such (ctaphid.PortTap). Later reports are ignored.
func (s *Stream) Closed() {
	t := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for d := range s.dirs {
		for cid := range s.dirs[d].buf {
			s.abandon(d, cid, "message incomplete when the connection closed")
		}
	}
	for cid, ps := range s.pending {
		for _, p := range ps {
			s.writeExchange(cid, p, nil, "no answer before the connection closed")
		}
	}
	clear(s.pending)
	_ = s.r.w.Write(&Record{Type: TypeNote, T: t, Src: s.id, Text: "connection closed"})
	s.r.mu.Lock()
	delete(s.r.streams, s)
	s.r.mu.Unlock()
	_ = s.r.w.Flush()
}

func fromName(d int) string {
	if d == 0 {
		return FromHost
	}
	return FromKey
}

func (s *Stream) report(d int, rep []byte, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if len(rep) != ctaphid.ReportSize {
		// Not a report a USB HID device ever sees (a 65-byte write with the report ID, say): the
		// device drops it. Its first bytes are kept to show what the host meant; the rest may
		// be a CBOR payload, so it is redacted like one.
		var red []Span
		if !s.r.dec.KeepSecrets && len(rep) > 8 {
			red = []Span{{8, len(rep)}}
		}
		s.writeReport(t, d, rep, red, fmt.Sprintf("%d bytes, not a %d-byte report: ignored by the key", len(rep), ctaphid.ReportSize))
		return
	}
	dir := &s.dirs[d]
	cid := ctaphid.ReportCID(rep)
	if ctaphid.IsInit(rep) && dir.rx.Pending(cid) {
		s.abandon(d, cid, "interrupted by a new initialization packet on its channel")
	}
	msg, ok, err := dir.rx.Add(rep)
	h := heldReport{t: t, data: [ctaphid.ReportSize]byte(rep)}
	switch {
	case err != nil:
		dir.buf[cid] = append(dir.buf[cid], h)
		s.abandon(d, cid, "reassembly: "+err.Error())
	case ok:
		held := append(dir.buf[cid], h)
		delete(dir.buf, cid)
		s.message(d, t, msg, held)
	case dir.rx.Pending(cid):
		dir.buf[cid] = append(dir.buf[cid], h)
	default:
		var red []Span
		if !s.r.dec.KeepSecrets {
			red = []Span{{ctaphid.ReportSize - ctaphid.ContPayloadSize, ctaphid.ReportSize}}
		}
		s.writeReport(t, d, rep, red, "continuation packet with no message in progress on its channel: ignored")
	}
}

// abandon writes the held reports of an incomplete message. Their payload is redacted unless
// secrets are kept: without the whole message nobody can tell where its secrets are.
func (s *Stream) abandon(d int, cid uint32, why string) {
	dir := &s.dirs[d]
	held := dir.buf[cid]
	delete(dir.buf, cid)
	dir.rx.Abort(cid)
	for i, h := range held {
		var red []Span
		if !s.r.dec.KeepSecrets {
			hdr := ctaphid.ReportSize - ctaphid.ContPayloadSize
			if i == 0 && ctaphid.IsInit(h.data[:]) {
				hdr = ctaphid.ReportSize - ctaphid.InitPayloadSize + 1 // the command or status byte stays
			}
			red = []Span{{hdr, ctaphid.ReportSize}}
		}
		note := ""
		if i == len(held)-1 {
			note = "message abandoned: " + why
		}
		s.writeReport(h.t, d, h.data[:], red, note)
	}
}

func (s *Stream) writeReport(t time.Time, d int, rep []byte, red []Span, note string) {
	_ = s.r.w.Write(&Record{Type: TypeReport, T: t, Src: s.id, From: fromName(d), Hex: newBytes(rep, red), Text: note})
}

// writeHeld writes a complete message's reports with the message's secret spans redacted.
func (s *Stream) writeHeld(d int, held []heldReport, secrets []Span) {
	per := reportSpans(secrets, len(held))
	for i, h := range held {
		s.writeReport(h.t, d, h.data[:], per[i], "")
	}
}

// reportSpans maps spans of a message payload onto the reports that carry it: the payload
// starts after the initialization packet's header and continues after each continuation
// packet's (CTAP 2.1 §11.2.4).
func reportSpans(secrets []Span, n int) [][]Span {
	out := make([][]Span, n)
	initHdr := ctaphid.ReportSize - ctaphid.InitPayloadSize
	contHdr := ctaphid.ReportSize - ctaphid.ContPayloadSize
	locate := func(i int) (report, off int) {
		if i < ctaphid.InitPayloadSize {
			return 0, initHdr + i
		}
		j := i - ctaphid.InitPayloadSize
		return 1 + j/ctaphid.ContPayloadSize, contHdr + j%ctaphid.ContPayloadSize
	}
	for _, sp := range secrets {
		for i := sp.Start; i < sp.End; {
			k, off := locate(i)
			if k >= n {
				break
			}
			room := ctaphid.ReportSize - off
			m := min(room, sp.End-i)
			out[k] = append(out[k], Span{off, off + m})
			i += m
		}
	}
	for k := range out {
		out[k] = mergeSpans(out[k], ctaphid.ReportSize)
	}
	return out
}

// message handles a complete message in direction d.
func (s *Stream) message(d int, t time.Time, msg ctaphid.Message, held []heldReport) {
	if d == 0 {
		s.hostMessage(t, msg, held)
		return
	}
	s.keyMessage(t, msg, held)
}

func (s *Stream) hostMessage(t time.Time, msg ctaphid.Message, held []heldReport) {
	m, secrets := s.r.dec.Request(t, msg.CID, msg.Cmd, msg.Payload)
	s.writeHeld(0, held, secrets)
	cid := msg.CID
	switch msg.Cmd {
	case ctaphid.CmdCancel:
		if ps := s.pending[cid]; len(ps) > 0 {
			ps[0].cancelled = true
			return
		}
		s.writeExchange(cid, &pending{req: m, cancelled: true}, nil, "CANCEL with no request in flight on its channel")
		return
	case ctaphid.CmdInit:
		if cid != ctaphid.BroadcastCID {
			for _, p := range s.pending[cid] {
				s.writeExchange(cid, p, nil, "abandoned: the host resynchronised the channel with INIT")
			}
			delete(s.pending, cid)
		}
	}
	s.pending[cid] = append(s.pending[cid], &pending{req: m})
}

func (s *Stream) keyMessage(t time.Time, msg ctaphid.Message, held []heldReport) {
	cid := msg.CID
	ps := s.pending[cid]
	if msg.Cmd == ctaphid.CmdKeepalive {
		m, _ := s.r.dec.Response(t, cid, msg.Cmd, msg.Payload, nil)
		s.writeHeld(1, held, nil)
		if len(ps) > 0 {
			ps[0].keepalives++
			ps[0].kaStatus = m.Status
		} else {
			_ = s.r.w.Write(&Record{Type: TypeNote, T: t, Src: s.id, CID: m.CID, Text: "KEEPALIVE with no request in flight"})
		}
		return
	}
	if msg.Cmd == ctaphid.CmdError {
		// The key dropped whatever it was receiving on this channel.
		if s.dirs[0].rx.Pending(cid) {
			s.abandon(0, cid, "the key answered CTAPHID_ERROR")
		}
	}
	var p *pending
	switch {
	case len(ps) == 0:
	case msg.Cmd == ctaphid.CmdError && len(msg.Payload) > 0 && ctaphid.ErrorCode(msg.Payload[0]) == ctaphid.ErrChannelBusy:
		p, ps = ps[len(ps)-1], ps[:len(ps)-1] // BUSY answers the request that found the channel busy
	default:
		p, ps = ps[0], ps[1:]
	}
	if len(ps) == 0 {
		delete(s.pending, cid)
	} else {
		s.pending[cid] = ps
	}
	var req *Message
	if p != nil {
		req = p.req
	} else {
		p = &pending{}
	}
	m, secrets := s.r.dec.Response(t, cid, msg.Cmd, msg.Payload, req)
	s.writeHeld(1, held, secrets)
	errText := ""
	if req == nil {
		errText = "answer with no request on its channel"
	}
	s.writeExchange(cid, p, m, errText)
}

func (s *Stream) writeExchange(cid uint32, p *pending, resp *Message, errText string) {
	s.n++
	rec := &Record{Type: TypeExchange, Src: s.id, N: s.n, CID: fmt.Sprintf("%08x", cid), Request: p.req, Response: resp,
		Keepalives: p.keepalives, KeepaliveStatus: p.kaStatus, Cancelled: p.cancelled, Error: errText}
	switch {
	case p.req != nil:
		rec.T = p.req.T
	case resp != nil:
		rec.T = resp.T
	default:
		rec.T = s.now()
	}
	if p.req != nil && resp != nil {
		rec.DurationUS = resp.T.Sub(p.req.T).Microseconds()
	}
	_ = s.r.w.Write(rec)
	_ = s.r.w.Flush()
}

// Unframed is an exchange that came without reports (an event log): whole CTAPHID payloads.
type Unframed struct {
	ReqT, RespT time.Time
	Req, Resp   []byte // nil when absent
	// HID and RespHID are the CTAPHID commands the messages travelled in; 0 means the framing
	// is unknown (CTAP2 CBOR is assumed, and the messages say "-").
	HID, RespHID byte
	// RespNote explains how the response was read (e.g. a status byte that was inferred).
	RespNote    string
	Error       string
	Transaction string
	Fields      map[string]string
}

// Exchange writes an exchange that came without reports, decoded and redacted like a recorded one.
func (s *Stream) Exchange(u Unframed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	hid, rhid := u.HID, u.RespHID
	if hid == 0 {
		hid = ctaphid.CmdCBOR
	}
	if rhid == 0 {
		rhid = hid
	}
	p := &pending{}
	if u.Req != nil {
		p.req, _ = s.r.dec.Request(u.ReqT, 0, hid, u.Req)
		p.req.CID = ""
		if u.HID == 0 {
			p.req.HID = "-"
		}
	}
	var m *Message
	if u.Resp != nil {
		m, _ = s.r.dec.Response(u.RespT, 0, rhid, u.Resp, p.req)
		m.CID = ""
		if u.RespHID == 0 && u.HID == 0 {
			m.HID = "-"
		}
		if u.RespNote != "" {
			m.Error = strings.TrimPrefix(m.Error+"; "+u.RespNote, "; ")
		}
	}
	s.n++
	rec := &Record{Type: TypeExchange, Src: s.id, N: s.n, Request: p.req, Response: m, Error: u.Error, T: u.ReqT,
		Transaction: u.Transaction, Fields: u.Fields}
	if u.Req == nil {
		rec.T = u.RespT
	}
	if u.Req != nil && u.Resp != nil && !u.RespT.Before(u.ReqT) {
		rec.DurationUS = u.RespT.Sub(u.ReqT).Microseconds()
	}
	return s.r.w.Write(rec)
}

// CommandOf returns the CTAP2 command of a decoded request, 0 if it is not one.
func CommandOf(m *Message) ctap.Command {
	if m == nil || m.Code == nil || (m.HID != "CBOR" && m.HID != "-") {
		return 0
	}
	return ctap.Command(*m.Code)
}
