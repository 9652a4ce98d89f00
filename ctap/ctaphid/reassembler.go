package ctaphid

import "encoding/binary"

// Message is one reassembled CTAPHID message.
type Message struct {
	CID     uint32
	Cmd     byte // with the 0x80 bit set, e.g. CmdCBOR
	Payload []byte
}

type partial struct {
	cid     uint32
	cmd     byte
	buf     []byte
	nextSeq byte
}

// Reassembler turns a stream of reports into messages, keeping one message in progress per channel.
// It applies the spec's framing rules and nothing else: channel allocation, busy and lock rules
// belong to Device. The zero value is ready to use.
type Reassembler struct {
	// partials is searched linearly: a device accepts one message at a time and a client reads one
	// channel, so it rarely holds more than one entry, and a slice is reused without allocating.
	partials []partial
}

func (r *Reassembler) find(cid uint32) *partial {
	for i := range r.partials {
		if r.partials[i].cid == cid {
			return &r.partials[i]
		}
	}
	return nil
}

func (r *Reassembler) drop(cid uint32) {
	for i := range r.partials {
		if r.partials[i].cid == cid {
			last := len(r.partials) - 1
			r.partials[i] = r.partials[last]
			r.partials[last] = partial{}
			r.partials = r.partials[:last]
			return
		}
	}
}

// Add takes one report. It returns the message it completes (ok true), nothing (ok false, err nil)
// while a message is still incomplete or the report is ignored, or an error:
//   - ErrReportSize for a report that is not 64 bytes (nothing else happens);
//   - ErrInvalidLen for an initialization packet announcing more than MaxMessageSize bytes;
//   - ErrInvalidSeq for a continuation packet out of sequence, or an initialization packet other
//     than CTAPHID_INIT on a channel whose message is incomplete; the incomplete message is dropped.
//
// A CTAPHID_INIT initialization packet in the middle of a message on the same channel drops that
// message and is returned as a new one: INIT resynchronizes a channel (CTAP 2.1 §11.2.9.1.3). A
// continuation packet on a channel with no message in progress is ignored (§11.2.4).
// The returned payload is owned by the caller.
func (r *Reassembler) Add(report []byte) (msg Message, ok bool, err error) {
	if len(report) != ReportSize {
		return Message{}, false, ErrReportSize
	}
	cid := ReportCID(report)
	p := r.find(cid)
	if !IsInit(report) {
		if p == nil {
			return Message{}, false, nil
		}
		if report[4] != p.nextSeq {
			r.drop(cid)
			return Message{}, false, ErrInvalidSeq
		}
		p.nextSeq++
		p.buf = append(p.buf, report[contHeader:contHeader+min(ContPayloadSize, cap(p.buf)-len(p.buf))]...)
		if len(p.buf) < cap(p.buf) {
			return Message{}, false, nil
		}
		msg := Message{CID: cid, Cmd: p.cmd, Payload: p.buf}
		r.drop(cid)
		return msg, true, nil
	}
	cmd := report[4]
	if p != nil {
		r.drop(cid)
		if cmd != CmdInit {
			return Message{}, false, ErrInvalidSeq
		}
	}
	n := int(binary.BigEndian.Uint16(report[5:]))
	if n > MaxMessageSize {
		return Message{}, false, ErrInvalidLen
	}
	buf := make([]byte, 0, n)
	buf = append(buf, report[initHeader:initHeader+min(n, InitPayloadSize)]...)
	if len(buf) == n {
		return Message{CID: cid, Cmd: cmd, Payload: buf}, true, nil
	}
	r.partials = append(r.partials, partial{cid: cid, cmd: cmd, buf: buf})
	return Message{}, false, nil
}

// Pending reports whether a message is in progress on cid.
func (r *Reassembler) Pending(cid uint32) bool { return r.find(cid) != nil }

// Abort drops the message in progress on cid, if any, and reports whether there was one.
func (r *Reassembler) Abort(cid uint32) bool {
	if r.find(cid) == nil {
		return false
	}
	r.drop(cid)
	return true
}

// Reset drops every message in progress.
func (r *Reassembler) Reset() {
	clear(r.partials)
	r.partials = r.partials[:0]
}
