// Package usbredirtest is a minimal usbredir usb-guest — the side QEMU plays — for tests and
// benchmarks of the usb-host server: it says hello, waits for the device, enumerates it as a USB
// host would (descriptors, SET_CONFIGURATION, SET_IDLE, report descriptor), polls the interrupt
// IN endpoint and carries CTAPHID reports as a ctaphid.ReportConn.
//
// It is a test peer, not the proof: a real kernel behind QEMU enumerates the key in the VM tests.
package usbredirtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbredir"
)

// Caps are the capabilities the guest announces: those QEMU 7.2 announces, less the bulk ones.
var Caps = usbredir.Caps(0).With(usbredir.CapConnectDeviceVersion).With(usbredir.CapFilter).
	With(usbredir.CapDeviceDisconnectAck).With(usbredir.CapEPInfoMaxPacketSize).
	With(usbredir.Cap64BitIDs).With(usbredir.Cap32BitBulkLength)

// ErrDisconnected is returned while the device is unplugged.
var ErrDisconnected = errors.New("usbredirtest: device disconnected")

// Event is a device arrival (Connected true) or removal seen by the guest.
type Event struct {
	Connected bool
	Device    usbredir.DeviceConnect
}

// Guest is one usb-guest connection.
type Guest struct {
	c     net.Conn
	rd    *usbredir.Reader
	caps  usbredir.Caps
	peer  usbredir.Caps
	noAck bool
	inbox chan [usbdev.ReportSize]byte

	wmu    sync.Mutex
	n      usbredir.Negotiated
	nextID uint64

	mu        sync.Mutex
	waiting   map[uint64]chan usbredir.Packet
	connected bool
	arrived   chan struct{} // closed while connected
	device    usbredir.DeviceConnect
	epInfo    usbredir.EPInfo
	ifInfo    usbredir.InterfaceInfo
	outErr    error
	events    chan Event
	readErr   error
	done      chan struct{}
	closeOnce sync.Once
}

// Options tune Dial.
type Options struct {
	// Caps replaces the announced capabilities (zero means Caps).
	Caps usbredir.Caps
	// Filter, when set, is sent as filter_filter after hello.
	Filter string
	// NoDisconnectAck leaves device_disconnect unacknowledged (the test sends the ack itself).
	NoDisconnectAck bool
}

// New says hello on c and starts reading. It does not wait for the device: use WaitConnected.
func New(c net.Conn, o Options) (*Guest, error) {
	g := &Guest{
		c: c, rd: usbredir.NewReader(c, usbredir.FromHost), caps: o.Caps, noAck: o.NoDisconnectAck,
		inbox:   make(chan [usbdev.ReportSize]byte, 4096),
		waiting: map[uint64]chan usbredir.Packet{}, events: make(chan Event, 16), done: make(chan struct{}),
		nextID: 1, arrived: make(chan struct{}),
	}
	if g.caps == 0 {
		g.caps = Caps
	}
	if err := g.send(usbredir.Packet{Type: usbredir.TypeHello,
		Header: usbredir.EncodeHello(usbredir.Hello{Version: "fidolab usbredirtest guest", Caps: g.caps})}); err != nil {
		return nil, err
	}
	p, err := g.rd.Next()
	if err != nil {
		return nil, fmt.Errorf("usbredirtest: reading hello: %w", err)
	}
	if p.Type != usbredir.TypeHello {
		return nil, fmt.Errorf("usbredirtest: first packet is %s, want hello", p.Type)
	}
	h, err := usbredir.DecodeHello(p.Header)
	if err != nil {
		return nil, err
	}
	g.peer = h.Caps
	n := usbredir.Negotiate(g.caps, h.Caps)
	g.rd.SetNegotiated(n)
	g.wmu.Lock()
	g.n = n
	g.wmu.Unlock()
	if o.Filter != "" {
		if err := g.send(usbredir.Packet{Type: usbredir.TypeFilterFilter, Data: append([]byte(o.Filter), 0)}); err != nil {
			return nil, err
		}
	}
	go g.readLoop()
	return g, nil
}

// Dial connects to a usbredir server at network/address, waits for the device and enumerates it.
func Dial(ctx context.Context, network, address string) (*Guest, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	g, err := New(c, Options{})
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, err := g.WaitConnected(ctx); err != nil {
		g.Close()
		return nil, err
	}
	if err := g.Enumerate(ctx); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// Negotiated is the layout in use.
func (g *Guest) Negotiated() usbredir.Negotiated {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.n
}

// Send writes one packet (the id is the caller's).
func (g *Guest) Send(p usbredir.Packet) error { return g.send(p) }

func (g *Guest) send(p usbredir.Packet) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	_, err := g.c.Write(usbredir.AppendPacket(nil, g.n, p))
	return err
}

// Request sends p with a fresh id and waits for the reply with that id.
func (g *Guest) Request(ctx context.Context, p usbredir.Packet) (usbredir.Packet, error) {
	ch := make(chan usbredir.Packet, 1)
	g.mu.Lock()
	p.ID = g.nextID
	g.nextID++
	g.waiting[p.ID] = ch
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.waiting, p.ID)
		g.mu.Unlock()
	}()
	if err := g.send(p); err != nil {
		return usbredir.Packet{}, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-g.done:
		return usbredir.Packet{}, g.err()
	case <-ctx.Done():
		return usbredir.Packet{}, ctx.Err()
	}
}

func (g *Guest) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.readErr != nil {
		return g.readErr
	}
	return net.ErrClosed
}

// Events delivers device arrivals and removals.
func (g *Guest) Events() <-chan Event { return g.events }

// WaitConnected waits until the device is connected (it may be already). It leaves Events alone.
func (g *Guest) WaitConnected(ctx context.Context) (usbredir.DeviceConnect, error) {
	for {
		g.mu.Lock()
		arrived := g.arrived
		g.mu.Unlock()
		select {
		case <-arrived:
			g.mu.Lock()
			d, ok := g.device, g.connected
			g.mu.Unlock()
			if ok {
				return d, nil
			}
		case <-g.done:
			return usbredir.DeviceConnect{}, g.err()
		case <-ctx.Done():
			return usbredir.DeviceConnect{}, ctx.Err()
		}
	}
}

// Info is what the host said about endpoints and interfaces.
func (g *Guest) Info() (usbredir.EPInfo, usbredir.InterfaceInfo) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.epInfo, g.ifInfo
}

// Control runs one control transfer and returns the reply's status and data.
func (g *Guest) Control(ctx context.Context, s usbdev.Setup, data []byte) (usbredir.Status, []byte, error) {
	h := usbredir.ControlHeader{Endpoint: s.RequestType & 0x80, Request: s.Request, RequestType: s.RequestType,
		Value: s.Value, Index: s.Index, Length: s.Length}
	r, err := g.Request(ctx, usbredir.Packet{Type: usbredir.TypeControlPacket, Header: h.Encode(), Data: data})
	if err != nil {
		return 0, nil, err
	}
	if r.Type != usbredir.TypeControlPacket {
		return 0, nil, fmt.Errorf("usbredirtest: control answered with %s", r.Type)
	}
	return usbredir.DecodeControlHeader(r.Header).Status, r.Data, nil
}

// Enumerate does what a USB host does with a new HID device: read the device and configuration
// descriptors, select the configuration, set the idle rate, read the report descriptor, and poll
// the interrupt IN endpoint.
func (g *Guest) Enumerate(ctx context.Context) error {
	steps := []struct {
		name  string
		setup usbdev.Setup
	}{
		{"GET_DESCRIPTOR device", usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0100, Length: 18}},
		{"GET_DESCRIPTOR configuration", usbdev.Setup{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0200, Length: 255}},
	}
	for _, s := range steps {
		if st, _, err := g.Control(ctx, s.setup, nil); err != nil || st != usbredir.StatusSuccess {
			return fmt.Errorf("usbredirtest: %s: status %d, %v", s.name, st, err)
		}
	}
	r, err := g.Request(ctx, usbredir.Packet{Type: usbredir.TypeSetConfiguration, Header: []byte{1}})
	if err != nil {
		return err
	}
	if r.Type != usbredir.TypeConfigurationStatus || r.Header[0] != byte(usbredir.StatusSuccess) || r.Header[1] != 1 {
		return fmt.Errorf("usbredirtest: set_configuration answered %s %x", r.Type, r.Header)
	}
	for _, s := range []usbdev.Setup{
		{RequestType: 0x21, Request: usbdev.ReqSetIdle},
		{RequestType: 0x81, Request: usbdev.ReqGetDescriptor, Value: 0x2200, Length: uint16(len(usbdev.ReportDescriptor))},
	} {
		if st, _, err := g.Control(ctx, s, nil); err != nil || st != usbredir.StatusSuccess {
			return fmt.Errorf("usbredirtest: %s: status %d, %v", s, st, err)
		}
	}
	return g.StartReceiving(ctx)
}

// StartReceiving asks the host to poll the interrupt IN endpoint.
func (g *Guest) StartReceiving(ctx context.Context) error {
	r, err := g.Request(ctx, usbredir.Packet{Type: usbredir.TypeStartInterruptReceiving, Header: []byte{usbdev.EndpointIn}})
	if err != nil {
		return err
	}
	if r.Type != usbredir.TypeInterruptReceivingStatus || r.Header[0] != byte(usbredir.StatusSuccess) {
		return fmt.Errorf("usbredirtest: start_interrupt_receiving answered %s %x", r.Type, r.Header)
	}
	return nil
}

// WriteReport sends one output report on the interrupt OUT endpoint. The host's acknowledgement
// is not awaited; a failed one is returned by the next WriteReport.
func (g *Guest) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	g.mu.Lock()
	err, connected := g.outErr, g.connected
	g.outErr = nil
	id := g.nextID
	g.nextID++
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if !connected {
		return ErrDisconnected
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return g.send(usbredir.Packet{Type: usbredir.TypeInterruptPacket, ID: id,
		Header: usbredir.InterruptHeader{Endpoint: usbdev.EndpointOut, Length: usbdev.ReportSize}.Encode(), Data: r})
}

// ReadReport returns the next input report from the interrupt IN endpoint.
func (g *Guest) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case r := <-g.inbox:
		return r[:], nil
	case <-g.done:
		return nil, g.err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close hangs up.
func (g *Guest) Close() error {
	err := g.c.Close()
	<-g.done
	return err
}

func (g *Guest) readLoop() {
	defer g.closeOnce.Do(func() { close(g.done) })
	for {
		p, err := g.rd.Next()
		if err != nil {
			g.mu.Lock()
			g.readErr = err
			g.mu.Unlock()
			return
		}
		g.dispatch(p)
	}
}

func (g *Guest) dispatch(p usbredir.Packet) {
	n := g.Negotiated()
	g.mu.Lock()
	ack := false
	defer func() {
		g.mu.Unlock()
		if ack {
			_ = g.send(usbredir.Packet{Type: usbredir.TypeDeviceDisconnectAck}) // a failed write ends the read loop
		}
	}()
	switch p.Type {
	case usbredir.TypeEPInfo:
		g.epInfo = usbredir.DecodeEPInfo(p.Header, n)
	case usbredir.TypeInterfaceInfo:
		g.ifInfo = usbredir.DecodeInterfaceInfo(p.Header)
	case usbredir.TypeDeviceConnect:
		if !g.connected {
			close(g.arrived)
		}
		g.connected, g.device = true, usbredir.DecodeDeviceConnect(p.Header)
		g.event(Event{Connected: true, Device: g.device})
	case usbredir.TypeDeviceDisconnect:
		if g.connected {
			g.arrived = make(chan struct{})
		}
		g.connected = false
		g.event(Event{Connected: false, Device: g.device})
		ack = !g.noAck && g.caps.Has(usbredir.CapDeviceDisconnectAck) && g.peer.Has(usbredir.CapDeviceDisconnectAck)
	case usbredir.TypeInterruptPacket:
		h := usbredir.DecodeInterruptHeader(p.Header)
		if h.Endpoint&0x80 != 0 && (h.Status == usbredir.StatusSuccess || g.waiting[p.ID] == nil) {
			if h.Status == usbredir.StatusSuccess && len(p.Data) == usbdev.ReportSize {
				select {
				case g.inbox <- [usbdev.ReportSize]byte(p.Data):
				default: // a test that stopped reading; drop as a host would
				}
			}
			return
		}
		if h.Status != usbredir.StatusSuccess && h.Endpoint&0x80 == 0 {
			g.outErr = fmt.Errorf("usbredirtest: interrupt OUT failed with status %d", h.Status)
		}
		if ch, ok := g.waiting[p.ID]; ok {
			ch <- clonePacket(p)
		}
	default:
		if ch, ok := g.waiting[p.ID]; ok {
			ch <- clonePacket(p)
		}
	}
}

func (g *Guest) event(e Event) {
	select {
	case g.events <- e:
	default:
	}
}

func clonePacket(p usbredir.Packet) usbredir.Packet {
	p.Header = append([]byte(nil), p.Header...)
	p.Data = append([]byte(nil), p.Data...)
	return p
}
