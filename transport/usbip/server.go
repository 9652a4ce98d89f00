// Package usbip is a USB/IP server (protocol v1.1.1, Linux Documentation/usb/usbip_protocol.rst)
// exporting the key as one USB device: a client lists it (OP_REQ_DEVLIST), imports it by bus ID
// (OP_REQ_IMPORT), then submits URBs — control transfers on endpoint 0 answered by
// transport/usbdev, interrupt IN and OUT carrying CTAPHID reports — and unlinks them. Linux's
// vhci-hcd (`usbip attach -r HOST -b BUSID`) and usbip-win2 on Windows are clients.
//
// USB/IP has no message for a device that goes away while imported: an unplug through the control
// API closes the imported connection, which the client sees as the device's removal; while
// unplugged the device is absent from the list and an import is refused, and after the replug it
// can be imported again (usbip-win2 re-attaches by itself, Linux needs `usbip attach` again).
package usbip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/internal/netserve"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// DefaultBusID is the bus ID the key is exported as unless Config says otherwise.
const DefaultBusID = defaultBusID

// maxQueuedReports bounds the input reports held while no interrupt IN URB is pending.
const maxQueuedReports = 1024

// Config is what a Server exports.
type Config struct {
	// Device is the key's CTAPHID device.
	Device *ctaphid.Device
	// USB is the key's USB description.
	USB *usbdev.Device
	// Plug, when set, is watched: an unplug closes the imported connection and hides the device.
	Plug usbdev.Plug
	// BusID is the exported bus ID ("1-1" when empty): "BUS-PORT" with decimal numbers.
	BusID string
	// Logger gets connection events and protocol errors; nil discards.
	Logger *slog.Logger
}

// Server serves the key to USB/IP clients: any number may list it, one at a time imports it.
type Server struct {
	cfg    Config
	log    *slog.Logger
	busNum uint32

	mu       sync.Mutex
	imported *session
}

// NewServer checks cfg and returns a server for it.
func NewServer(cfg Config) (*Server, error) {
	if cfg.BusID == "" {
		cfg.BusID = DefaultBusID
	}
	bus, port, ok := strings.Cut(cfg.BusID, "-")
	busNum, err1 := strconv.ParseUint(bus, 10, 16)
	_, err2 := strconv.ParseUint(strings.ReplaceAll(port, ".", ""), 10, 32)
	if !ok || err1 != nil || err2 != nil || busNum == 0 || len(cfg.BusID) > maxBusIDLength {
		return nil, fmt.Errorf("usbip: bus ID %q: want BUS-PORT such as 1-1", cfg.BusID)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, busNum: uint32(busNum)}, nil
}

// BusID is the exported bus ID.
func (s *Server) BusID() string { return s.cfg.BusID }

// Record is the device record the server lists and imports.
func (s *Server) Record() Device {
	id := s.cfg.USB.Identity()
	d := Device{
		Path: defaultPathPrefix + s.cfg.BusID, BusID: s.cfg.BusID,
		BusNum: s.busNum, DevNum: defaultDevNum, Speed: usbSpeedFull,
		VendorID: id.VendorID, ProductID: id.ProductID, BCDDevice: id.BCDDevice,
		ConfigurationValue: usbdev.ConfigurationValue, NumConfigs: 1,
	}
	for _, f := range s.cfg.USB.Interfaces() {
		d.Interfaces = append(d.Interfaces, Interface{Class: f.Class, SubClass: f.SubClass, Protocol: f.Protocol})
	}
	d.NumInterfaces = byte(len(d.Interfaces))
	return d
}

func (s *Server) plugged() bool { return s.cfg.Plug == nil || s.cfg.Plug.Plugged() }

// Serve accepts clients on l until ctx ends, and closes l. A client that breaks the protocol is
// logged and disconnected; the server goes on. It returns nil when ctx ended it.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	if s.cfg.Plug != nil {
		unwatch := s.cfg.Plug.WatchPlug(s.plugChanged)
		defer unwatch()
	}
	return netserve.Serve(ctx, "usbip", l, func(c net.Conn) {
		if err := s.ServeConn(ctx, c); err != nil {
			s.log.Error("usbip: connection closed", "remote", netserve.Remote(c), "err", err)
		}
	})
}

func (s *Server) plugChanged(on bool) {
	if on {
		s.log.Info("usbip: device plugged in; it can be imported again", "busid", s.cfg.BusID)
		return
	}
	// The unplug ends the import at once: a client that re-imports as soon as it sees its
	// connection close (usbip-win2 does) must not find the old session still holding the key.
	s.mu.Lock()
	ss := s.imported
	s.imported = nil
	s.mu.Unlock()
	if ss != nil {
		s.log.Info("usbip: device unplugged; closing the imported connection", "busid", s.cfg.BusID)
		ss.c.Close()
	}
}

// ServeConn serves one client connection: an OP_REQ_DEVLIST (then the connection ends) or an
// OP_REQ_IMPORT followed by URB traffic until the client hangs up, the key is unplugged or ctx
// ends. It closes c and returns an error (wrapping ErrProtocol) only when the client broke the
// protocol.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err := s.serveConn(c)
	if ctx.Err() != nil || !errors.Is(err, ErrProtocol) {
		if err != nil {
			s.log.Debug("usbip: connection ended", "remote", netserve.Remote(c), "reason", err)
		}
		return nil
	}
	return err
}

func (s *Server) serveConn(c net.Conn) error {
	var hb [opHeaderSize]byte
	if err := readFull(c, hb[:], "an OP header"); err != nil {
		return err
	}
	h := DecodeOpHeader(hb[:])
	if h.Version != Version {
		return protoErr("client speaks USB/IP version %#04x; this server speaks %#04x (v1.1.1)", h.Version, Version)
	}
	switch h.Code {
	case OpReqDevlist:
		reply := OpHeader{Version: Version, Code: OpRepDevlist, Status: StOK}.Encode()
		if !s.plugged() {
			_, err := c.Write(append(reply, 0, 0, 0, 0))
			return err
		}
		reply = append(reply, 0, 0, 0, 1)
		_, err := c.Write(AppendDevice(reply, s.Record(), true))
		return err
	case OpReqImport:
		var busid [busIDSize]byte
		if err := readFull(c, busid[:], "OP_REQ_IMPORT"); err != nil {
			return err
		}
		return s.importDevice(c, cString(busid[:]))
	}
	return protoErr("operation %#04x, want OP_REQ_DEVLIST (0x8005) or OP_REQ_IMPORT (0x8003)", h.Code)
}

func (s *Server) importDevice(c net.Conn, busid string) error {
	fail := func(st uint32, why string) error {
		s.log.Warn("usbip: import refused", "remote", netserve.Remote(c), "busid", busid, "reason", why)
		_, err := c.Write(OpHeader{Version: Version, Code: OpRepImport, Status: st}.Encode())
		return err
	}
	if busid != s.cfg.BusID {
		return fail(StNoDev, fmt.Sprintf("no device %q here (the key is %s)", busid, s.cfg.BusID))
	}
	if !s.plugged() {
		return fail(StNoDev, "the key is unplugged")
	}
	ss := newSession(s, c)
	s.mu.Lock()
	if s.imported != nil {
		s.mu.Unlock()
		return fail(StDevBusy, "the key is imported by another client")
	}
	s.imported = ss
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.imported == ss { // an unplug may have ended it, and a new import taken the key
			s.imported = nil
		}
		s.mu.Unlock()
	}()
	reply := OpHeader{Version: Version, Code: OpRepImport, Status: StOK}.Encode()
	if _, err := c.Write(AppendDevice(reply, s.Record(), false)); err != nil {
		return err
	}
	s.log.Info("usbip: device imported", "remote", netserve.Remote(c), "busid", busid, "device", s.cfg.USB.String())
	err := ss.run()
	s.log.Info("usbip: import ended", "remote", netserve.Remote(c), "busid", busid)
	return err
}

// epInterrupt is the number of both interrupt endpoints (0x81 IN, 0x01 OUT).
const epInterrupt = usbdev.EndpointOut

// urb is an interrupt IN URB waiting for a report.
type urb struct {
	seqnum, length, packets uint32
}

// session is one imported connection.
type session struct {
	srv *Server
	c   net.Conn
	w   *netserve.Writer // encoded replies, in order

	mu      sync.Mutex
	state   *usbdev.State
	port    *ctaphid.Port
	pending []urb // interrupt IN URBs, oldest first
	queue   [][usbdev.ReportSize]byte
}

func newSession(s *Server, c net.Conn) *session {
	return &session{srv: s, c: c, w: netserve.NewWriter(c, 256)}
}

func (ss *session) run() error {
	ss.mu.Lock()
	ss.state = ss.srv.cfg.USB.NewState(ss.setReport)
	ss.port = ss.srv.cfg.Device.Open(ss.inputReport)
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		p := ss.port
		ss.port = nil
		ss.mu.Unlock()
		p.Close()
		ss.w.Close()
		ss.c.Close()
	}()
	for {
		cmd, err := ReadCommand(ss.c)
		if err != nil {
			return err
		}
		if err := ss.handle(cmd); err != nil {
			return err
		}
	}
}

func (ss *session) sendLocked(b []byte) { ss.w.Send(b) }

// setReport takes an output report sent with SET_REPORT on endpoint 0 (ss.mu held).
func (ss *session) setReport(r []byte) {
	if ss.port != nil {
		ss.port.Input(r)
	}
}

// inputReport is the CTAPHID port's output: it completes the oldest pending interrupt IN URB,
// or waits for one.
func (ss *session) inputReport(r []byte) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.port == nil {
		return
	}
	if len(ss.queue) >= maxQueuedReports {
		ss.queue = ss.queue[1:]
		ss.srv.log.Warn("usbip: client is not reading the key; dropped the oldest input report")
	}
	ss.queue = append(ss.queue, [usbdev.ReportSize]byte(r))
	ss.flushLocked()
}

func (ss *session) flushLocked() {
	for len(ss.pending) > 0 && len(ss.queue) > 0 {
		u := ss.pending[0]
		r := ss.queue[0]
		ss.pending, ss.queue = ss.pending[1:], ss.queue[1:]
		msg := RetSubmitMsg{Seqnum: u.seqnum, NumberOfPackets: u.packets, ActualLength: usbdev.ReportSize, Data: r[:]}
		if u.length < usbdev.ReportSize {
			// A 64-byte packet into a smaller buffer: babble, the buffer filled.
			msg.Status, msg.ActualLength, msg.Data = StatusOverflow, u.length, r[:u.length]
		}
		ss.sendLocked(msg.Encode())
	}
}

func (ss *session) handle(cmd any) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch m := cmd.(type) {
	case *Unlink:
		st := StatusOK // already completed: its RET_SUBMIT is sent or on its way
		for i, u := range ss.pending {
			if u.seqnum == m.UnlinkSeqnum {
				ss.pending = append(ss.pending[:i], ss.pending[i+1:]...)
				st = StatusUnlinked // no RET_SUBMIT will follow
				break
			}
		}
		ss.sendLocked(RetUnlinkMsg{Seqnum: m.Seqnum, Status: st}.Encode())
		return nil
	case *Submit:
		return ss.submitLocked(m)
	}
	return nil
}

func (ss *session) submitLocked(m *Submit) error {
	reply := RetSubmitMsg{Seqnum: m.Seqnum, NumberOfPackets: m.NumberOfPackets}
	switch {
	case m.EP == 0:
		ss.controlLocked(m, &reply)
	case m.EP == epInterrupt && m.Direction == DirIn:
		if !ss.state.Configured() || ss.state.Halted(usbdev.EndpointIn) {
			reply.Status = StatusStall
			break
		}
		ss.pending = append(ss.pending, urb{seqnum: m.Seqnum, length: m.Length, packets: m.NumberOfPackets})
		ss.flushLocked()
		return nil
	case m.EP == epInterrupt:
		if !ss.state.Configured() || ss.state.Halted(usbdev.EndpointOut) {
			reply.Status = StatusStall
			break
		}
		var r [usbdev.ReportSize]byte
		for d := m.Data; len(d) > 0; {
			n := copy(r[:], d)
			clear(r[n:])
			ss.port.Input(r[:])
			d = d[n:]
		}
		reply.ActualLength = m.Length
	default:
		// The Linux stub drops the connection for an endpoint the device lacks.
		return protoErr("CMD_SUBMIT seqnum %d for endpoint %d, which the key does not have", m.Seqnum, m.EP)
	}
	ss.sendLocked(reply.Encode())
	return nil
}

// Hub class request the Linux stub turns into a device reset: SET_FEATURE(PORT_RESET) to a port.
const (
	reqTypePortOut   = 0x23
	featurePortReset = 4
)

func (ss *session) controlLocked(m *Submit, reply *RetSubmitMsg) {
	setup, _ := usbdev.ParseSetup(m.Setup[:])
	if setup.RequestType == reqTypePortOut && setup.Request == usbdev.ReqSetFeature && setup.Value == featurePortReset {
		ss.resetLocked()
		return
	}
	var out []byte
	if !setup.In() {
		out = m.Data
	}
	in, err := ss.state.Control(setup, out)
	if err != nil {
		reply.Status = StatusStall
		ss.srv.log.Debug("usbip: control request stalled", "setup", setup.String())
		return
	}
	if setup.In() {
		if uint32(len(in)) > m.Length {
			in = in[:m.Length]
		}
		reply.ActualLength, reply.Data = uint32(len(in)), in
	} else {
		reply.ActualLength = uint32(len(out))
	}
	if ss.state.Halted(usbdev.EndpointIn) || !ss.state.Configured() {
		// SET_FEATURE(ENDPOINT_HALT) or a new configuration: the waiting IN URBs stall.
		for _, u := range ss.pending {
			ss.sendLocked(RetSubmitMsg{Seqnum: u.seqnum, Status: StatusStall, NumberOfPackets: u.packets}.Encode())
		}
		ss.pending = nil
	}
	ss.flushLocked()
}

// resetLocked is a USB reset of the device: unconfigured, pending IN URBs fail.
func (ss *session) resetLocked() {
	ss.state.Reset()
	for _, u := range ss.pending {
		ss.sendLocked(RetSubmitMsg{Seqnum: u.seqnum, Status: StatusShutdown, NumberOfPackets: u.packets}.Encode())
	}
	ss.pending, ss.queue = nil, nil
}
