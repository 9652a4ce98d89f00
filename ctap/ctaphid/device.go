package ctaphid

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
)

// Handler is the authenticator behind a Device. The Device never calls two Handler methods at once.
type Handler interface {
	// HandleCBOR processes one CTAPHID_CBOR payload (command byte + CBOR) and returns the response payload
	// (status byte + CBOR). setStatus switches the keepalive status (StatusUPNeeded while waiting for the user,
	// StatusProcessing otherwise); it acts on the request being handled and must not be called after
	// HandleCBOR returns. ctx is cancelled by CTAPHID_CANCEL on that channel, by PowerCycle, or when
	// the port closes; the handler should then return CTAP2_ERR_KEEPALIVE_CANCEL (0x2D) within 50 ms.
	HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte
	// HandleMSG processes one CTAP1/U2F APDU and returns the response APDU (data + SW1 SW2).
	HandleMSG(ctx context.Context, apdu []byte) []byte
	// Wink asks the device to identify itself.
	Wink()
}

// DeviceInfo is what a Device reports in its CTAPHID_INIT response.
type DeviceInfo struct {
	Major, Minor, Build byte
	Capabilities        byte // CapWink | CapCBOR | CapNMsg
}

// Defaults for the Device timers.
const (
	// DefaultMessageTimeout is how long a whole message may take, from its initialization packet
	// to its last continuation packet, before the Device answers ERR_MSG_TIMEOUT and frees the
	// channel. It bounds the message, not the gap between packets: with a per-packet timer a host
	// sending one continuation every 0.7 s held the device (every other channel BUSY) for ~90 s
	// per message. A full 129-packet message takes a USB host about 130 ms; 3 s is ample for a
	// slow or loaded host and short enough that a crashed one does not hold the key for long.
	DefaultMessageTimeout = 3 * time.Second
	// DefaultKeepaliveInterval is the KEEPALIVE period while a CBOR request runs. Windows gives up on
	// a key that stays silent for about half a second; the spec suggests 100 ms.
	DefaultKeepaliveInterval = 100 * time.Millisecond
	// MaxLockSeconds is the longest CTAPHID_LOCK the spec allows.
	MaxLockSeconds = 10
	// maxChannels bounds the allocated channels so a host looping on INIT cannot grow memory;
	// the oldest channel is dropped first, as small keys with a fixed channel table do.
	maxChannels = 256
)

// Timing is a Device's timer settings. SetTiming changes them while the device runs: the next
// message or request uses the new values.
type Timing struct {
	// MessageTimeout is how long a whole message may take from its first packet to its last;
	// 0 means DefaultMessageTimeout.
	MessageTimeout time.Duration
	// KeepaliveInterval is the KEEPALIVE period while a CBOR request runs; 0 means
	// DefaultKeepaliveInterval.
	KeepaliveInterval time.Duration
	// NoKeepalive never sends KEEPALIVE, as some old keys did; hosts such as Windows then give up
	// on slow requests. For compatibility testing.
	NoKeepalive bool
}

// withDefaults fills in the zero durations.
func (t Timing) withDefaults() Timing {
	if t.MessageTimeout <= 0 {
		t.MessageTimeout = DefaultMessageTimeout
	}
	if t.KeepaliveInterval <= 0 {
		t.KeepaliveInterval = DefaultKeepaliveInterval
	}
	return t
}

type config struct {
	timing    Timing
	clock     clock.Clock
	rand      io.Reader
	pullGrace time.Duration
}

// Option configures a Device.
type Option func(*config)

// WithClock sets the clock of the device's timers (message timeout, keepalive period, LOCK
// expiry) and of the times its reports carry (OpenTimed); the default is the wall clock.
func WithClock(c clock.Clock) Option { return func(cfg *config) { cfg.clock = c } }

// WithChannelRand sets the source of channel IDs (crypto/rand by default). For tests only: a
// predictable source lets one host guess another's channel and CANCEL or resync its request.
func WithChannelRand(r io.Reader) Option { return func(cfg *config) { cfg.rand = r } }

// WithPullGrace sets how long a CBOR request waits for a host that runs its requests itself
// (Port.RunPending) before a worker goroutine runs it (DefaultPullGrace). Wall time.
func WithPullGrace(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.pullGrace = d
		}
	}
}

// WithMessageTimeout sets how long a whole message may take from its first packet to its last.
func WithMessageTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timing.MessageTimeout = d
		}
	}
}

// WithKeepaliveInterval sets the KEEPALIVE period while a CBOR request runs.
func WithKeepaliveInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.timing.KeepaliveInterval = d
		}
	}
}

// WithoutKeepalive never sends KEEPALIVE (Timing.NoKeepalive).
func WithoutKeepalive() Option { return func(c *config) { c.timing.NoKeepalive = true } }

// Device is the CTAPHID state machine of a key: channel allocation, reassembly, the one-transaction
// rule, LOCK, keepalives and CANCEL. Hosts reach it through Ports.
//
// Channels are device-global (any port may use any allocated channel, as with hidraw), but a response
// goes only to the port that sent the request. Channel IDs are random, so a host cannot guess
// another host's channel to CANCEL or resync its request. A LOCK held by another channel makes every message,
// CTAPHID_INIT included, fail with ERR_CHANNEL_BUSY. The Device never sends ERR_LOCK_REQUIRED: no
// CTAP 2.1 command requires a lock. CTAPHID_CANCEL never gets a response, whatever its channel.
type Device struct {
	h     Handler
	info  DeviceInfo
	clock clock.Clock

	// timing is guarded by mu.
	timing Timing

	rand io.Reader // channel IDs

	mu       sync.Mutex
	channels map[uint32]struct{}
	order    []uint32 // allocation order, for eviction

	rx         Reassembler
	rxActive   bool // a multi-packet message is being received
	rxCID      uint32
	rxPort     *Port
	rxDeadline time.Time
	// The device's timers are armed lazily and never stopped: each fires at most once per its
	// period, finds what is due then and re-arms for it. A request then costs no timer
	// operation (a Reset or a Stop is a trip into the runtime's timer heap, an AfterFunc an
	// allocation too), and an idle device's timers fire once more and stay quiet.
	rxTimer    clock.Timer
	rxArmed    bool      // rxTimer will fire, at rxTimerDue
	rxTimerDue time.Time //
	kaTimer    clock.Timer
	kaArmed    bool
	kaTimerDue time.Time

	txn       *txn        // the request the handler is working on, nil when idle
	idle      chan job    // unbuffered: a send succeeds only while a worker waits for a job
	pull      job         // a job waiting for its host to run it (Port.RunPending); t nil if none
	pullTimer *time.Timer // hands pull to a worker when its host does not come (wall time)
	pullArmed bool
	pullSeen  *txn // pull's request when pullTimer last fired
	pullGrace time.Duration
	lastJob   *txn // the newest handler job; each job waits for its predecessor to end

	lockCID   uint32
	lockUntil time.Time

	unpowered bool // unplugged: reports from hosts go nowhere

	// running is the request whose handler runs now; setStatus, made once, switches its
	// keepalive status (one function for every request: no closure per request).
	running   atomic.Pointer[txn]
	setStatus func(byte)

	tap atomic.Pointer[tapBox] // observes new ports (tap.go)
}

// NewDevice returns a Device that serves h.
func NewDevice(h Handler, info DeviceInfo, opts ...Option) *Device {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.rand == nil {
		cfg.rand = rand.Reader
	}
	if cfg.pullGrace == 0 {
		cfg.pullGrace = DefaultPullGrace
	}
	d := &Device{
		h: h, info: info, clock: clock.Or(cfg.clock), timing: cfg.timing.withDefaults(), rand: cfg.rand,
		pullGrace: cfg.pullGrace,
		channels:  make(map[uint32]struct{}),
		idle:      make(chan job),
	}
	d.setStatus = func(s byte) {
		if t := d.running.Load(); t != nil {
			t.status.Store(uint32(s))
		}
	}
	return d
}

// Info returns what the device reports in its INIT response.
func (d *Device) Info() DeviceInfo { return d.info }

// Clock returns the device's clock.
func (d *Device) Clock() clock.Clock { return d.clock }

// Timing returns the timer settings, defaults filled in.
func (d *Device) Timing() Timing {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.timing
}

// SetTiming changes the timer settings; zero durations mean the defaults. A message being
// received and a request running keep the values they started with.
func (d *Device) SetTiming(t Timing) {
	d.mu.Lock()
	d.timing = t.withDefaults()
	d.mu.Unlock()
}

// PowerCycle simulates unplugging and replugging the key: every channel, lock and incomplete message is
// dropped and the request in flight is cancelled without a response. Ports stay open. A channel from
// before the power cycle is INVALID_CHANNEL afterwards (new channels are random, so one is handed
// out again only by a 1 in 2³² chance).
func (d *Device) PowerCycle() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.abortTxn()
	d.rx.Reset()
	d.endRx()
	clear(d.channels)
	d.order = d.order[:0]
	d.lockCID = 0
}

// SetPowered plugs the key in (true) or pulls it out (false). Unplugging is a PowerCycle after
// which every report is ignored, as writes to a vanished device go nowhere, until it is plugged in again.
func (d *Device) SetPowered(on bool) {
	if !on {
		d.PowerCycle()
	}
	d.mu.Lock()
	d.unpowered = !on
	d.mu.Unlock()
}

// Powered reports whether the key is plugged in.
func (d *Device) Powered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.unpowered
}

// inputs takes reports (a whole number of 64-byte reports) from p under one hold of the lock,
// then starts the timer of a message left incomplete: a message whose reports all came in one
// call (a host writes a message at once) costs no clock read.
func (d *Device) inputs(p *Port, reports []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ; len(reports) >= ReportSize; reports = reports[ReportSize:] {
		d.input(p, reports[:ReportSize])
	}
	if d.rxActive && d.rxDeadline.IsZero() {
		d.startRxTimer()
	}
}

// input takes one report, with d.mu held.
func (d *Device) input(p *Port, report []byte) {
	if d.unpowered {
		return
	}
	cid := ReportCID(report)
	if !IsInit(report) {
		if d.rxActive && cid == d.rxCID {
			d.feed(p, report)
		}
		return // a continuation packet for no message in progress is ignored (§11.2.4)
	}
	cmd := report[4]
	if cid == 0 {
		p.sendError(cid, ErrInvalidChannel)
		return
	}
	if d.rxActive && cid == d.rxCID {
		// An initialization packet interrupts the message on its own channel: INIT resyncs it, anything
		// else is a sequence error (the order SoloKeys and OpenSK apply too).
		d.rx.Abort(cid)
		d.endRx()
		if cmd != CmdInit {
			p.sendError(cid, ErrInvalidSeq)
			return
		}
	}
	if d.lockedAgainst(cid) {
		if cmd != CmdCancel {
			p.sendError(cid, ErrChannelBusy)
		}
		return
	}
	switch cmd {
	case CmdInit:
		d.handleInit(p, report)
		return
	case CmdCancel:
		// CANCEL takes no lock that a running request holds, so it reaches a handler waiting for the user.
		if d.txn != nil && d.txn.cid == cid {
			d.txn.ctx.cancel()
		}
		return
	}
	if cid == BroadcastCID || !d.allocated(cid) {
		p.sendError(cid, ErrInvalidChannel)
		return
	}
	if d.rxActive || d.txn != nil {
		p.sendError(cid, ErrChannelBusy)
		return
	}
	d.feed(p, report)
}

// feed passes a report of an accepted message to the reassembler.
func (d *Device) feed(p *Port, report []byte) {
	owner := p
	if d.rxActive {
		owner = d.rxPort
	}
	msg, ok, err := d.rx.Add(report)
	if err != nil {
		cid := ReportCID(report)
		d.rx.Abort(cid)
		d.endRx()
		code := ErrOther
		errors.As(err, &code)
		p.sendError(cid, code)
		return
	}
	if !ok {
		if !d.rxActive {
			d.startRx(p, ReportCID(report))
		}
		return
	}
	d.endRx()
	d.dispatch(owner, msg)
}

// startRx begins receiving a multi-packet message. Its deadline is fixed once, by
// startRxTimer when the report that started it has been taken (the same instant on the device's
// clock): the whole message must arrive within the message timeout, however its packets are
// spaced.
func (d *Device) startRx(p *Port, cid uint32) {
	d.rxActive, d.rxCID, d.rxPort = true, cid, p
	d.rxDeadline = time.Time{}
}

// startRxTimer fixes the deadline of the message being received and arms the timer for it.
func (d *Device) startRxTimer() {
	d.rxDeadline = d.clock.Now().Add(d.timing.MessageTimeout)
	if !d.rxArmed || d.rxTimerDue.After(d.rxDeadline) {
		d.armRx(d.timing.MessageTimeout, d.rxDeadline)
	}
}

func (d *Device) armRx(in time.Duration, due time.Time) {
	if d.rxTimer == nil {
		d.rxTimer = d.clock.AfterFunc(in, d.rxTimeout)
	} else {
		d.rxTimer.Reset(in)
	}
	d.rxArmed, d.rxTimerDue = true, due
}

func (d *Device) endRx() {
	d.rxActive, d.rxCID, d.rxPort, d.rxDeadline = false, 0, nil, time.Time{}
}

// rxTimeout runs on the message timer. The timer may have been armed for an earlier message
// (it is never stopped): then the current one's deadline is still ahead and it re-arms for it.
func (d *Device) rxTimeout() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rxArmed = false
	if !d.rxActive {
		return
	}
	now := d.clock.Now()
	if left := d.rxDeadline.Sub(now); left > 0 {
		d.armRx(left, d.rxDeadline)
		return
	}
	cid, p := d.rxCID, d.rxPort
	d.rx.Abort(cid)
	d.endRx()
	p.sendError(cid, ErrMsgTimeout)
}

func (d *Device) dispatch(p *Port, msg Message) {
	caps := d.info.Capabilities
	switch msg.Cmd {
	case CmdPing:
		p.send(msg.CID, CmdPing, msg.Payload)
	case CmdLock:
		d.handleLock(p, msg)
	case CmdWink:
		switch {
		case caps&CapWink == 0:
			p.sendError(msg.CID, ErrInvalidCmd)
		case len(msg.Payload) != 0:
			p.sendError(msg.CID, ErrInvalidLen)
		default:
			d.startJob(p, msg)
		}
	case CmdCBOR:
		switch {
		case caps&CapCBOR == 0:
			p.sendError(msg.CID, ErrInvalidCmd)
		case len(msg.Payload) == 0:
			p.sendError(msg.CID, ErrInvalidLen)
		default:
			d.startJob(p, msg)
		}
	case CmdMsg:
		switch {
		case caps&CapNMsg != 0: // NMSG: the key does not implement CTAPHID_MSG
			p.sendError(msg.CID, ErrInvalidCmd)
		case len(msg.Payload) == 0:
			p.sendError(msg.CID, ErrInvalidLen)
		default:
			d.startJob(p, msg)
		}
	default:
		p.sendError(msg.CID, ErrInvalidCmd)
	}
}

func (d *Device) handleInit(p *Port, report []byte) {
	cid := ReportCID(report)
	if binary.BigEndian.Uint16(report[5:]) != 8 {
		p.sendError(cid, ErrInvalidLen)
		return
	}
	ch := cid
	switch {
	case cid == BroadcastCID:
		var ok bool
		if ch, ok = d.allocate(); !ok {
			p.sendError(cid, ErrOther)
			return
		}
	case d.allocated(cid):
		if d.txn != nil && d.txn.cid == cid {
			d.abortTxn()
		}
	default:
		p.sendError(cid, ErrInvalidChannel)
		return
	}
	resp := make([]byte, 17)
	copy(resp, report[initHeader:initHeader+8])
	binary.BigEndian.PutUint32(resp[8:], ch)
	resp[12] = ProtocolVersion
	resp[13], resp[14], resp[15], resp[16] = d.info.Major, d.info.Minor, d.info.Build, d.info.Capabilities
	p.send(cid, CmdInit, resp)
}

func (d *Device) handleLock(p *Port, msg Message) {
	if len(msg.Payload) != 1 {
		p.sendError(msg.CID, ErrInvalidLen)
		return
	}
	secs := msg.Payload[0]
	if secs > MaxLockSeconds {
		p.sendError(msg.CID, ErrInvalidPar)
		return
	}
	if secs == 0 {
		if d.lockCID == msg.CID {
			d.lockCID = 0
		}
	} else {
		d.lockCID = msg.CID
		d.lockUntil = d.clock.Now().Add(time.Duration(secs) * time.Second)
	}
	p.send(msg.CID, CmdLock, nil)
}

func (d *Device) lockedAgainst(cid uint32) bool {
	if d.lockCID == 0 {
		return false
	}
	if !d.clock.Now().Before(d.lockUntil) {
		d.lockCID = 0
		return false
	}
	return d.lockCID != cid
}

func (d *Device) allocated(cid uint32) bool {
	_, ok := d.channels[cid]
	return ok
}

// allocate draws a new random channel ID. Sequential IDs let a second host guess the first's
// channel (the one allocated just before its own) and CANCEL or resync its request. It reports
// false only when the random source fails or keeps repeating itself.
func (d *Device) allocate() (uint32, bool) {
	var b [4]byte
	cid := uint32(0)
	for attempt := 0; ; attempt++ {
		if attempt == 16 {
			return 0, false
		}
		if _, err := io.ReadFull(d.rand, b[:]); err != nil {
			return 0, false
		}
		cid = binary.BigEndian.Uint32(b[:])
		if cid != 0 && cid != BroadcastCID && !d.allocated(cid) {
			break
		}
	}
	if len(d.order) >= maxChannels {
		delete(d.channels, d.order[0])
		d.order = append(d.order[:0], d.order[1:]...)
	}
	d.channels[cid] = struct{}{}
	d.order = append(d.order, cid)
	return cid, true
}

// portClosed drops the work that port p started: its response would have nowhere to go.
func (d *Device) portClosed(p *Port) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.txn != nil && d.txn.port == p {
		d.abortTxn()
	}
	if d.rxActive && d.rxPort == p {
		d.rx.Abort(d.rxCID)
		d.endRx()
	}
}
