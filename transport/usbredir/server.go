// Package usbredir shows the key to a virtual machine through the usbredir protocol (version 0.7)
// that QEMU's `-device usb-redir` and libvirt's `<redirdev>` speak: fidolab is the usb-host side
// (the side that has the device), QEMU the usb-guest. The guest sees a full-speed USB HID FIDO key
// (transport/usbdev) with no driver of its own; CTAPHID reports travel as interrupt packets.
//
// The wire format and its checks are in proto.go and codec.go; usbredirtest holds a minimal
// usb-guest peer for tests and benchmarks.
package usbredir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/internal/netserve"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// OurCaps are the capabilities fidolab announces. QEMU refuses a device on an XHCI controller
// unless the usb-host has ep_info_max_packet_size, 64bits_ids and 32bits_bulk_length.
var OurCaps = Caps(0).With(CapConnectDeviceVersion).With(CapFilter).With(CapDeviceDisconnectAck).
	With(CapEPInfoMaxPacketSize).With(Cap64BitIDs).With(Cap32BitBulkLength)

// ErrBusy refuses a second guest while one has the key: a key is plugged into one machine.
var ErrBusy = errors.New("usbredir: refusing a second guest: the key is attached to another one")

// DefaultVersion is the version string of fidolab's hello.
const DefaultVersion = "fidolab usbredir-host"

// maxQueuedReports bounds the input reports held while the guest is not polling the interrupt IN
// endpoint (a real key's firmware would stall; the CTAPHID port's own queue is behind this one).
const maxQueuedReports = 1024

// Config is what a Server serves.
type Config struct {
	// Device is the key's CTAPHID device.
	Device *ctaphid.Device
	// USB is the key's USB description.
	USB *usbdev.Device
	// Plug, when set, is watched: an unplug sends device_disconnect, a replug device_connect.
	Plug usbdev.Plug
	// Logger gets connection events and protocol errors; nil discards.
	Logger *slog.Logger
	// Version is the hello version string; empty means DefaultVersion.
	Version string
}

// Server serves the key to usb-redir guests, one at a time: a key can be plugged into one
// machine only.
type Server struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	active *session
}

// NewServer returns a server for cfg.
func NewServer(cfg Config) *Server {
	if cfg.Version == "" {
		cfg.Version = DefaultVersion
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log}
}

// Serve accepts usb-guest connections on l until ctx ends, and closes l. A connection that breaks
// the protocol is logged and closed; the server goes on. It returns nil when ctx ended it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.cfg.Plug != nil {
		unwatch := s.cfg.Plug.WatchPlug(s.plugChanged)
		defer unwatch()
	}
	return netserve.Serve(ctx, "usbredir", l, func(c net.Conn) {
		if err := s.ServeConn(ctx, c); err != nil {
			s.log.Error("usbredir: connection closed", "remote", netserve.Remote(c), "err", err)
		}
	})
}

// ServeConn serves one usb-guest on c until the guest hangs up, ctx ends or the guest breaks the
// protocol; it closes c and returns an error (wrapping ErrProtocol) only in the last case. A second guest while one is attached is
// refused: the key is already plugged in elsewhere.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	ss := newSession(s, c)
	s.mu.Lock()
	if s.active != nil {
		s.mu.Unlock()
		return ErrBusy
	}
	s.active = ss
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.active = nil
		s.mu.Unlock()
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err := ss.run()
	if ctx.Err() != nil || !errors.Is(err, ErrProtocol) && !errors.Is(err, ErrBusy) {
		// A hang-up, a reset or our own close: the guest went away, which is no error.
		ss.log.Info("usbredir: guest disconnected", "reason", err)
		return nil
	}
	return err
}

func (s *Server) plugChanged(on bool) {
	s.mu.Lock()
	ss := s.active
	s.mu.Unlock()
	if ss != nil {
		ss.setPlugged(on)
	}
}

func (s *Server) plugged() bool {
	if s.cfg.Plug == nil {
		return true
	}
	return s.cfg.Plug.Plugged()
}

// session is one usb-guest connection.
type session struct {
	srv *Server
	c   net.Conn
	log *slog.Logger
	rd  *Reader
	w   *netserve.Writer // encoded packets, in order

	mu          sync.Mutex
	n           Negotiated
	peerCaps    Caps
	ready       bool // hellos exchanged
	connected   bool // the guest has been told the device is there
	awaitingAck bool // device_disconnect sent; the guest will acknowledge it
	state       *usbdev.State
	port        *ctaphid.Port
	receiving   bool // the guest polls the interrupt IN endpoint
	inID        uint64
	queue       [][usbdev.ReportSize]byte
}

func newSession(s *Server, c net.Conn) *session {
	return &session{
		srv: s, c: c, log: s.log.With("remote", netserve.Remote(c)),
		rd: NewReader(c, FromGuest), w: netserve.NewWriter(c, 256),
	}
}

func (ss *session) run() error {
	defer func() {
		ss.detach()
		ss.w.Close()
		ss.c.Close()
	}()
	ss.mu.Lock()
	ss.sendLocked(Packet{Type: TypeHello, Header: EncodeHello(Hello{Version: ss.srv.cfg.Version, Caps: OurCaps})})
	ss.mu.Unlock()

	p, err := ss.rd.Next()
	if err != nil {
		return fmt.Errorf("usbredir: reading the guest's hello: %w", err)
	}
	if p.Type != TypeHello {
		return protoErr("first packet from the guest is %s, want hello", p.Type)
	}
	h, err := DecodeHello(p.Header)
	if err != nil {
		return protoErr("%v", err)
	}
	ss.log.Info("usbredir: guest connected", "version", h.Version, "caps", fmt.Sprintf("%#x", uint32(h.Caps)))
	ss.mu.Lock()
	ss.peerCaps = h.Caps
	ss.n = Negotiate(OurCaps, h.Caps)
	ss.rd.SetNegotiated(ss.n)
	ss.ready = true
	if !h.Caps.Has(CapEPInfoMaxPacketSize) || !h.Caps.Has(Cap64BitIDs) || !h.Caps.Has(Cap32BitBulkLength) {
		ss.log.Warn("usbredir: the guest lacks capabilities QEMU needs on an XHCI controller; use EHCI or UHCI there",
			"caps", fmt.Sprintf("%#x", uint32(h.Caps)))
	}
	if ss.srv.plugged() {
		ss.connectLocked()
	}
	ss.mu.Unlock()

	for {
		p, err := ss.rd.Next()
		if err != nil {
			return err
		}
		closing, err := ss.handle(p)
		if closing != nil {
			closing.Close()
		}
		if err != nil {
			return err
		}
	}
}

// sendLocked queues p for the writer. It blocks while the writer is behind (a paused VM reads
// nothing), as a USB device waits for the host to poll it.
func (ss *session) sendLocked(p Packet) {
	ss.w.Send(AppendPacket(nil, ss.n, p))
}

// connectLocked tells the guest the device is there: ep_info, then interface_info, then
// device_connect, in the order the protocol requires.
func (ss *session) connectLocked() {
	dev := ss.srv.cfg.USB
	ss.sendInfoLocked()
	id := dev.Identity()
	ss.sendLocked(Packet{Type: TypeDeviceConnect, Header: DeviceConnect{
		Speed: SpeedFull, VendorID: id.VendorID, ProductID: id.ProductID, BCDDevice: id.BCDDevice,
	}.Encode(ss.n)})
	ss.state = dev.NewState(ss.setReport)
	ss.receiving, ss.queue = false, nil
	port := new(*ctaphid.Port)
	*port = ss.srv.cfg.Device.Open(func(r []byte) { ss.inputReport(port, r) })
	ss.port = *port
	ss.connected = true
	ss.log.Info("usbredir: device connected", "device", dev.String())
}

func (ss *session) sendInfoLocked() {
	dev := ss.srv.cfg.USB
	var ep EPInfo
	for i := range ep.Type {
		ep.Type[i] = EPTypeInvalid
	}
	for _, e := range dev.Endpoints() {
		i := EPIndex(e.Address)
		ep.Type[i], ep.Interval[i], ep.Interface[i], ep.MaxPacketSize[i] = e.Type, e.Interval, e.Interface, e.MaxPacketSize
	}
	ss.sendLocked(Packet{Type: TypeEPInfo, Header: ep.Encode(ss.n)})
	var ifs InterfaceInfo
	for i, f := range dev.Interfaces() {
		ifs.Interface[i], ifs.Class[i], ifs.SubClass[i], ifs.Protocol[i] = f.Number, f.Class, f.SubClass, f.Protocol
		ifs.Count++
	}
	ss.sendLocked(Packet{Type: TypeInterfaceInfo, Header: ifs.Encode()})
}

// dropDeviceLocked forgets the attached device and returns its port, to be closed by the caller
// without ss.mu held (closing waits for the port's writer, which may be waiting for ss.mu).
func (ss *session) dropDeviceLocked() *ctaphid.Port {
	p := ss.port
	ss.port, ss.state, ss.connected, ss.receiving, ss.queue = nil, nil, false, false, nil
	return p
}

// detach closes the port at the end of the session.
func (ss *session) detach() {
	ss.mu.Lock()
	p := ss.dropDeviceLocked()
	ss.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

// setPlugged shows an unplug or a replug to the guest.
func (ss *session) setPlugged(on bool) {
	ss.mu.Lock()
	var closing *ctaphid.Port
	switch {
	case !ss.ready:
	case !on && ss.connected:
		closing = ss.dropDeviceLocked()
		ss.sendLocked(Packet{Type: TypeDeviceDisconnect})
		ss.awaitingAck = OurCaps.Has(CapDeviceDisconnectAck) && ss.peerCaps.Has(CapDeviceDisconnectAck)
		ss.log.Info("usbredir: device unplugged")
	case on && !ss.connected && !ss.awaitingAck:
		ss.connectLocked()
	}
	ss.mu.Unlock()
	if closing != nil {
		closing.Close()
	}
}

// inputReport is the CTAPHID port's output: one 64-byte input report for the interrupt IN
// endpoint. It is sent at once while the guest polls the endpoint, and held otherwise.
func (ss *session) inputReport(from **ctaphid.Port, r []byte) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.port == nil || ss.port != *from {
		return // a report of a device that has since been unplugged
	}
	if len(ss.queue) >= maxQueuedReports {
		ss.queue = ss.queue[1:]
		ss.log.Warn("usbredir: guest is not reading the key; dropped the oldest input report")
	}
	ss.queue = append(ss.queue, [usbdev.ReportSize]byte(r))
	ss.flushLocked()
}

// flushLocked sends the held input reports while the guest polls the endpoint and it is not halted.
func (ss *session) flushLocked() {
	if !ss.receiving || ss.state == nil || ss.state.Halted(usbdev.EndpointIn) {
		return
	}
	for _, r := range ss.queue {
		ss.sendLocked(Packet{Type: TypeInterruptPacket, ID: ss.inID,
			Header: InterruptHeader{Endpoint: usbdev.EndpointIn, Length: usbdev.ReportSize}.Encode(), Data: r[:]})
		ss.inID++
	}
	ss.queue = ss.queue[:0]
}

// setReport takes an output report sent with SET_REPORT on endpoint 0.
func (ss *session) setReport(r []byte) {
	if ss.port != nil { // called from handle with ss.mu held
		ss.port.Input(r)
	}
}

func statusOf(err error) Status {
	if err != nil {
		return StatusStall
	}
	return StatusSuccess
}

// handle answers one packet from the guest. It returns the port of a device the guest dropped,
// for the caller to close without ss.mu held.
func (ss *session) handle(p Packet) (*ctaphid.Port, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !p.Type.Known() {
		ss.log.Warn("usbredir: skipping a packet of unknown type", "type", uint32(p.Type), "length", len(p.Data))
		return nil, nil
	}
	switch p.Type {
	case TypeCancelDataPacket:
		// Every data packet is answered before the next one is read, so nothing is pending: the
		// guest already has (or will read) the answer to the packet it cancels.
		ss.log.Debug("usbredir: cancel for a packet already answered", "id", p.ID)
		return nil, nil
	case TypeFilterFilter:
		return nil, ss.filterLocked(p)
	case TypeFilterReject:
		ss.log.Error("usbredir: the guest's device filter rejected the key; it stays unplugged until replugged through the control API",
			"device", ss.srv.cfg.USB.String())
		return ss.dropDeviceLocked(), nil
	case TypeDeviceDisconnectAck:
		if !ss.awaitingAck {
			ss.log.Debug("usbredir: unexpected device_disconnect_ack")
			return nil, nil
		}
		ss.awaitingAck = false
		if ss.srv.plugged() && !ss.connected {
			ss.connectLocked()
		}
		return nil, nil
	case TypeHello:
		return nil, protoErr("second hello from the guest")
	case TypeDeviceConnect, TypeDeviceDisconnect, TypeInterfaceInfo, TypeEPInfo, TypeConfigurationStatus,
		TypeAltSettingStatus, TypeIsoStreamStatus, TypeInterruptReceivingStatus, TypeBulkStreamsStatus,
		TypeBulkReceivingStatus, TypeBufferedBulkPacket:
		return nil, protoErr("%s is a usb-host packet; a guest never sends it", p.Type)
	}
	if !ss.connected {
		ss.replyDisconnectedLocked(p)
		return nil, nil
	}
	switch p.Type {
	case TypeReset:
		ss.state.Reset()
		ss.receiving, ss.queue = false, ss.queue[:0]
	case TypeSetConfiguration:
		err := ss.state.SetConfiguration(p.Header[0])
		if err == nil {
			// A new configuration restarts the endpoints; the guest starts polling again
			// (QEMU stops its interrupt receiving before it sends set_configuration).
			ss.receiving = false
			ss.sendInfoLocked()
		}
		ss.sendLocked(Packet{Type: TypeConfigurationStatus, ID: p.ID, Header: []byte{byte(statusOf(err)), ss.state.Configuration()}})
	case TypeGetConfiguration:
		ss.sendLocked(Packet{Type: TypeConfigurationStatus, ID: p.ID, Header: []byte{byte(StatusSuccess), ss.state.Configuration()}})
	case TypeSetAltSetting:
		err := ss.state.SetAltSetting(p.Header[0], p.Header[1])
		alt := p.Header[1]
		if err == nil {
			ss.sendInfoLocked()
		} else {
			alt = 0xff
		}
		ss.sendLocked(Packet{Type: TypeAltSettingStatus, ID: p.ID, Header: []byte{byte(statusOf(err)), p.Header[0], alt}})
	case TypeGetAltSetting:
		alt, err := ss.state.AltSetting(p.Header[0])
		if err != nil {
			alt = 0xff
		}
		ss.sendLocked(Packet{Type: TypeAltSettingStatus, ID: p.ID, Header: []byte{byte(statusOf(err)), p.Header[0], alt}})
	case TypeStartInterruptReceiving, TypeStopInterruptReceiving:
		ep := p.Header[0]
		st := StatusSuccess
		switch {
		case ep != usbdev.EndpointIn:
			st = StatusInval
		case p.Type == TypeStopInterruptReceiving:
			ss.receiving = false
		case !ss.state.Configured():
			st = StatusInval
		default:
			if !ss.receiving {
				ss.inID = 0
			}
			ss.receiving = true
		}
		ss.sendLocked(Packet{Type: TypeInterruptReceivingStatus, ID: p.ID, Header: []byte{byte(st), ep}})
		ss.flushLocked()
	case TypeStartIsoStream, TypeStopIsoStream:
		ss.sendLocked(Packet{Type: TypeIsoStreamStatus, ID: p.ID, Header: []byte{byte(StatusInval), p.Header[0]}})
	case TypeAllocBulkStreams, TypeFreeBulkStreams:
		h := make([]byte, 9)
		copy(h, p.Header[:4]) // the endpoints bitmask
		h[8] = byte(StatusInval)
		ss.sendLocked(Packet{Type: TypeBulkStreamsStatus, ID: p.ID, Header: h})
	case TypeStartBulkReceiving, TypeStopBulkReceiving:
		h := make([]byte, 6)
		copy(h, p.Header[:4]) // stream id
		ep := p.Header[4]     // stop_bulk_receiving: stream id, endpoint
		if p.Type == TypeStartBulkReceiving {
			ep = p.Header[8] // stream id, bytes per transfer, endpoint, transfers
		}
		h[4], h[5] = ep, byte(StatusInval)
		ss.sendLocked(Packet{Type: TypeBulkReceivingStatus, ID: p.ID, Header: h})
	case TypeControlPacket:
		ss.controlLocked(p)
	case TypeInterruptPacket:
		ss.interruptLocked(p)
	case TypeBulkPacket:
		h := DecodeBulkHeader(p.Header)
		ss.sendLocked(Packet{Type: TypeBulkPacket, ID: p.ID, Header: BulkHeader{Endpoint: h.Endpoint, Status: StatusInval, StreamID: h.StreamID}.Encode(ss.n)})
	case TypeIsoPacket:
		h := DecodeInterruptHeader(p.Header)
		ss.sendLocked(Packet{Type: TypeIsoPacket, ID: p.ID, Header: InterruptHeader{Endpoint: h.Endpoint, Status: StatusInval}.Encode()})
	}
	return nil, nil
}

// replyDisconnectedLocked answers a packet that reached an unplugged device: data packets fail
// with an I/O error, configuration requests likewise, the rest is dropped.
func (ss *session) replyDisconnectedLocked(p Packet) {
	ss.log.Debug("usbredir: packet for an unplugged device", "packet", p.String())
	switch p.Type {
	case TypeControlPacket:
		h := DecodeControlHeader(p.Header)
		h.Status, h.Length = StatusIOError, 0
		ss.sendLocked(Packet{Type: TypeControlPacket, ID: p.ID, Header: h.Encode()})
	case TypeInterruptPacket, TypeIsoPacket:
		h := DecodeInterruptHeader(p.Header)
		h.Status, h.Length = StatusIOError, 0
		ss.sendLocked(Packet{Type: p.Type, ID: p.ID, Header: h.Encode()})
	case TypeBulkPacket:
		h := DecodeBulkHeader(p.Header)
		h.Status, h.Length = StatusIOError, 0
		ss.sendLocked(Packet{Type: TypeBulkPacket, ID: p.ID, Header: h.Encode(ss.n)})
	case TypeSetConfiguration, TypeGetConfiguration:
		ss.sendLocked(Packet{Type: TypeConfigurationStatus, ID: p.ID, Header: []byte{byte(StatusIOError), 0}})
	case TypeSetAltSetting, TypeGetAltSetting:
		ss.sendLocked(Packet{Type: TypeAltSettingStatus, ID: p.ID, Header: []byte{byte(StatusIOError), p.Header[0], 0xff}})
	case TypeStartInterruptReceiving, TypeStopInterruptReceiving:
		ss.sendLocked(Packet{Type: TypeInterruptReceivingStatus, ID: p.ID, Header: []byte{byte(StatusIOError), p.Header[0]}})
	}
}

func (ss *session) controlLocked(p Packet) {
	h := DecodeControlHeader(p.Header)
	setup := usbdev.Setup{RequestType: h.RequestType, Request: h.Request, Value: h.Value, Index: h.Index, Length: h.Length}
	var out []byte
	if !setup.In() {
		out = p.Data
	}
	in, err := ss.state.Control(setup, out)
	reply := h
	reply.Status = statusOf(err)
	switch {
	case err != nil:
		reply.Length, in = 0, nil
	case setup.In():
		reply.Length = uint16(len(in))
	}
	if err != nil {
		ss.log.Debug("usbredir: control request stalled", "setup", setup.String())
	}
	ss.sendLocked(Packet{Type: TypeControlPacket, ID: p.ID, Header: reply.Encode(), Data: in})
	ss.flushLocked() // CLEAR_FEATURE(ENDPOINT_HALT) may have resumed the IN endpoint
}

// interruptLocked takes an interrupt OUT transfer: every 64 bytes are one output report (a
// transfer longer than wMaxPacketSize is several packets on the bus), a short tail padded with
// zeros as the HID class pads a short report.
func (ss *session) interruptLocked(p Packet) {
	h := DecodeInterruptHeader(p.Header)
	reply := InterruptHeader{Endpoint: h.Endpoint, Length: h.Length}
	switch {
	case h.Endpoint != usbdev.EndpointOut:
		reply.Status, reply.Length = StatusInval, 0
	case ss.state.Halted(usbdev.EndpointOut) || !ss.state.Configured():
		reply.Status, reply.Length = StatusStall, 0
	default:
		var r [usbdev.ReportSize]byte
		for d := p.Data; len(d) > 0; {
			n := copy(r[:], d)
			clear(r[n:])
			ss.port.Input(r[:])
			d = d[n:]
		}
	}
	ss.sendLocked(Packet{Type: TypeInterruptPacket, ID: p.ID, Header: reply.Encode()})
}

// filterLocked reads the guest's device filter and says clearly when it refuses the key; the
// guest itself then rejects the device with filter_reject.
func (ss *session) filterLocked(p Packet) error {
	s := string(p.Data[:len(p.Data)-1])
	f, err := ParseFilter(s)
	if err != nil {
		return protoErr("filter_filter: %v", err)
	}
	dev := ss.srv.cfg.USB
	id := dev.Identity()
	var ifs InterfaceInfo
	for i, x := range dev.Interfaces() {
		ifs.Interface[i], ifs.Class[i], ifs.SubClass[i], ifs.Protocol[i] = x.Number, x.Class, x.SubClass, x.Protocol
		ifs.Count++
	}
	if !f.Allows(DeviceConnect{VendorID: id.VendorID, ProductID: id.ProductID, BCDDevice: id.BCDDevice}, ifs) {
		ss.log.Error("usbredir: the guest's usb-redir filter refuses this key (HID class 0x03); change the filter property",
			"filter", s, "device", dev.String())
	} else {
		ss.log.Debug("usbredir: guest filter allows the key", "filter", s)
	}
	return nil
}
