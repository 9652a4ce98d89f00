package ctaphid

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// maxQueuedMessages bounds a port's output when its host stops reading; further messages are dropped,
// as hidraw drops input reports a reader does not collect.
const maxQueuedMessages = 4096

var errPortClosed = errors.New("ctaphid: port closed")

type outMsg struct {
	cid     uint32
	cmd     byte
	payload []byte
	at      time.Time // when the device produced it, on the device's clock
}

// Port is one host connection to a Device, like one open hidraw file descriptor. Output to it is
// written by a single goroutine per port, so reports of different messages never interleave and out is
// never called concurrently; a Direct port has no such goroutine: the device calls out from
// whichever goroutine produced the message, under the port's lock.
type Port struct {
	d       *Device
	out     func(report []byte, at time.Time)
	tap     PortTap // nil unless the device has a tap (tap.go)
	direct  bool    // out never blocks: called under qmu, no writer goroutine
	flush   func()  // after the last report of a message (or of a batch of them); may be nil
	pulls   bool    // the host runs its CBOR requests itself (RunPending); guarded by d.mu
	untimed bool    // opened with Open: messages carry no time

	qmu     sync.Mutex
	cond    *sync.Cond
	queue   []outMsg
	spare   []outMsg
	closed  bool
	gone    atomic.Bool // closed, readable without qmu (Input checks it for every report)
	writing bool        // out is being called (by the writer goroutine or by sendNow); guarded by qmu
	exited  chan struct{}

	scratch  [ReportSize]byte // the writer goroutine's report buffer
	direct64 [ReportSize]byte // sendNow's report buffer (one sendNow at a time: writing), a Direct port's (under qmu)
	// writeAt is the time of the message being written, for out; it belongs to whoever set
	// writing. write is writeReport bound once, so that writing a message allocates nothing.
	writeAt time.Time
	write   func(report []byte) error
}

// PortOption configures a Port.
type PortOption func(*Port)

// Direct declares that out never blocks and never calls into the Device or the Port: it only
// hands the report on (transport/inproc appends it to a queue). The device then calls out from
// whichever goroutine produced the message (the handler's, the one that delivered a PING, a
// keepalive timer) instead of waking a writer goroutine of the port's own for every message: a
// hand-off fewer per message, and a port that holds no goroutine. Calls are still serialised and
// in order.
func Direct() PortOption { return func(p *Port) { p.direct = true } }

// WithFlush sets a function the device calls after the last report of every message it sends
// (or of several, when they were queued together), in the same goroutine and order as out. A
// transport whose out only buffers reports writes them there in one go: over a socket, one
// system call per message instead of one per 64-byte report.
func WithFlush(flush func()) PortOption { return func(p *Port) { p.flush = flush } }

// Open connects a host to the device. out receives every report the device sends to this host; the
// slice is reused after out returns, so out must copy what it keeps. out must not call Close.
func (d *Device) Open(out func(report []byte), opts ...PortOption) *Port {
	return d.OpenTimed(func(r []byte, _ time.Time) { out(r) }, append(opts, untimed)...)
}

// untimed marks a port opened with Open: its host is not told when reports were produced, so
// the device does not read its clock for every message.
func untimed(p *Port) { p.untimed = true }

// now is the time a message to this port is stamped with: the device's clock for OpenTimed.
func (p *Port) now() time.Time {
	if p.untimed {
		return time.Time{}
	}
	return p.d.clock.Now()
}

// OpenTimed is Open for a host that needs to know when the device sent each report: at is the
// time, on the device's clock (WithClock), at which the device produced the report's message —
// the same for every packet of a message. On a virtual clock it tells a host model how long the
// key stayed silent (a keepalive every 100 ms, or one response 1.5 s after the request) without
// any wall time passing.
func (d *Device) OpenTimed(out func(report []byte, at time.Time), opts ...PortOption) *Port {
	p := &Port{d: d, out: out, exited: make(chan struct{}), tap: d.openTap()}
	for _, o := range opts {
		o(p)
	}
	p.cond = sync.NewCond(&p.qmu)
	if p.direct {
		p.write = p.emit
		close(p.exited)
		return p
	}
	p.write = p.writeReport
	go p.writer()
	return p
}

// Input delivers one report written by the host. A report that is not exactly ReportSize bytes (a
// 65-byte write with a leading report ID included) is dropped without an answer, as a USB HID device
// never sees such a transfer. Input does not block on the handler or on output.
func (p *Port) Input(report []byte) {
	p.tapInput(report)
	if len(report) != ReportSize {
		return
	}
	if p.gone.Load() {
		return
	}
	p.d.inputs(p, report)
}

// InputReports delivers reports the host wrote at once, in order: exactly as many Input calls
// of 64 bytes each (a trailing partial report is dropped, as Input drops a short one), but
// taken under one hold of the device's lock, as a transport that reads a whole message at once
// (a socket, an in-process host writing a message) hands them over.
func (p *Port) InputReports(reports []byte) {
	whole := reports[:len(reports)-len(reports)%ReportSize]
	if p.tap != nil {
		for r := whole; len(r) > 0; r = r[ReportSize:] {
			p.tapInput(r[:ReportSize])
		}
		if len(whole) < len(reports) {
			p.tapInput(reports[len(whole):])
		}
	}
	if len(whole) == 0 || p.gone.Load() {
		return
	}
	p.d.inputs(p, whole)
}

// Close disconnects the host: a request it started is cancelled and its response dropped. When Close
// returns, out is not called again.
func (p *Port) Close() {
	p.qmu.Lock()
	if p.closed {
		p.qmu.Unlock()
		<-p.exited
		return
	}
	p.closed = true
	p.gone.Store(true)
	clear(p.queue)
	p.queue = nil
	p.cond.Broadcast()
	for p.writing { // a sendNow in progress: out must not be called once Close returns
		p.cond.Wait()
	}
	p.qmu.Unlock()
	p.d.portClosed(p)
	<-p.exited
	p.tapClosed()
}

func (p *Port) send(cid uint32, cmd byte, payload []byte) {
	if len(payload) > MaxMessageSize {
		cmd, payload = CmdError, oneByte(byte(ErrOther))
	}
	p.qmu.Lock()
	defer p.qmu.Unlock()
	if p.closed {
		return
	}
	if p.direct {
		p.writeAt = p.now()
		_ = eachPacket(&p.direct64, cid, cmd, payload, p.write)
		p.flushOut()
		return
	}
	if len(p.queue) >= maxQueuedMessages {
		return
	}
	p.queue = append(p.queue, outMsg{cid: cid, cmd: cmd, payload: payload, at: p.now()})
	p.cond.Broadcast()
}

// sendNow writes a message from the calling goroutine when nothing else is queued or being
// written, and queues it otherwise, so order is kept either way. The caller may block on out.
func (p *Port) sendNow(cid uint32, cmd byte, payload []byte) {
	if p.direct {
		p.send(cid, cmd, payload)
		return
	}
	if len(payload) > MaxMessageSize {
		cmd, payload = CmdError, oneByte(byte(ErrOther))
	}
	p.qmu.Lock()
	if p.closed {
		p.qmu.Unlock()
		return
	}
	at := p.now()
	if p.writing || len(p.queue) > 0 {
		if len(p.queue) < maxQueuedMessages {
			p.queue = append(p.queue, outMsg{cid: cid, cmd: cmd, payload: payload, at: at})
			p.cond.Broadcast()
		}
		p.qmu.Unlock()
		return
	}
	p.writing = true
	p.qmu.Unlock()
	p.writeAt = at
	_ = eachPacket(&p.direct64, cid, cmd, payload, p.write)
	p.flushOut()
	p.qmu.Lock()
	p.writing = false
	p.cond.Broadcast() // the writer may have work queued meanwhile; Close may be waiting
	p.qmu.Unlock()
}

// writeReport hands one report to the host unless the port has been closed.
func (p *Port) writeReport(r []byte) error {
	p.qmu.Lock()
	closed := p.closed
	p.qmu.Unlock()
	if closed {
		return errPortClosed
	}
	return p.emit(r)
}

// flushOut tells a transport that buffers reports that a message (or a batch) is complete.
func (p *Port) flushOut() {
	if p.flush != nil {
		p.flush()
	}
}

// emit hands one report to the host: every report the device sends passes here. A Direct port
// calls it with qmu held.
func (p *Port) emit(r []byte) error {
	p.tapOutput(r)
	p.out(r, p.writeAt)
	return nil
}

func (p *Port) sendError(cid uint32, code ErrorCode) {
	p.send(cid, CmdError, oneByte(byte(code)))
}

func (p *Port) writer() {
	defer close(p.exited)
	for {
		p.qmu.Lock()
		for (len(p.queue) == 0 || p.writing) && !p.closed {
			p.cond.Wait()
		}
		if p.closed {
			p.qmu.Unlock()
			return
		}
		batch := p.queue
		p.queue = p.spare[:0]
		p.writing = true
		p.qmu.Unlock()
		for _, m := range batch {
			p.writeAt = m.at
			if eachPacket(&p.scratch, m.cid, m.cmd, m.payload, p.write) != nil {
				break
			}
		}
		p.flushOut()
		clear(batch) // drop payload references
		p.qmu.Lock()
		p.spare = batch[:0]
		p.writing = false
		p.cond.Broadcast() // Close may be waiting for the write to end
		p.qmu.Unlock()
	}
}
