// Package usbiptest is a minimal USB/IP client — the part vhci-hcd plays — for tests and
// benchmarks of the server: it lists and imports the device, enumerates it as a USB host would,
// keeps an interrupt IN URB pending as usbhid does, and carries CTAPHID reports as a
// ctaphid.ReportConn.
//
// It is a test peer, not the proof: Linux's vhci-hcd in a QEMU guest imports the key in the VM
// tests.
package usbiptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbip"
)

// List asks the server at address (TCP) for its exported devices.
func List(ctx context.Context, network, address string) ([]usbip.Device, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := c.Write(usbip.OpHeader{Version: usbip.Version, Code: usbip.OpReqDevlist}.Encode()); err != nil {
		return nil, err
	}
	var h [12]byte
	if _, err := readFull(c, h[:]); err != nil {
		return nil, err
	}
	oh := usbip.DecodeOpHeader(h[:8])
	if oh.Version != usbip.Version || oh.Code != usbip.OpRepDevlist || oh.Status != usbip.StOK {
		return nil, fmt.Errorf("usbiptest: devlist reply %+v", oh)
	}
	n := int(h[8])<<24 | int(h[9])<<16 | int(h[10])<<8 | int(h[11])
	var devs []usbip.Device
	for range min(n, 64) {
		rec := make([]byte, 312)
		if _, err := readFull(c, rec); err != nil {
			return nil, err
		}
		d := usbip.DecodeDevice(rec)
		for range d.NumInterfaces {
			var f [4]byte
			if _, err := readFull(c, f[:]); err != nil {
				return nil, err
			}
			d.Interfaces = append(d.Interfaces, usbip.Interface{Class: f[0], SubClass: f[1], Protocol: f[2]})
		}
		devs = append(devs, d)
	}
	return devs, nil
}

func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := c.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ImportError is a refused OP_REQ_IMPORT.
type ImportError struct{ Status uint32 }

func (e *ImportError) Error() string {
	return fmt.Sprintf("usbiptest: import refused with status %d", e.Status)
}

// Client is one imported device.
type Client struct {
	c      net.Conn
	Device usbip.Device

	wmu sync.Mutex
	seq uint32

	mu      sync.Mutex
	waiting map[uint32]chan any
	in      map[uint32]bool
	irq     map[uint32]bool // pending interrupt IN URBs
	outErr  error
	inbox   chan [usbdev.ReportSize]byte
	readErr error
	done    chan struct{}
}

// Import imports busid over c.
func Import(c net.Conn, busid string) (*Client, error) {
	req := usbip.OpHeader{Version: usbip.Version, Code: usbip.OpReqImport}.Encode()
	var b [32]byte
	copy(b[:31], busid)
	if _, err := c.Write(append(req, b[:]...)); err != nil {
		return nil, err
	}
	var h [8]byte
	if _, err := readFull(c, h[:]); err != nil {
		return nil, err
	}
	oh := usbip.DecodeOpHeader(h[:])
	if oh.Version != usbip.Version || oh.Code != usbip.OpRepImport {
		return nil, fmt.Errorf("usbiptest: import reply %+v", oh)
	}
	if oh.Status != usbip.StOK {
		return nil, &ImportError{Status: oh.Status}
	}
	rec := make([]byte, 312)
	if _, err := readFull(c, rec); err != nil {
		return nil, err
	}
	cl := &Client{c: c, Device: usbip.DecodeDevice(rec), waiting: map[uint32]chan any{}, in: map[uint32]bool{},
		irq: map[uint32]bool{}, inbox: make(chan [usbdev.ReportSize]byte, 4096), done: make(chan struct{})}
	go cl.readLoop()
	return cl, nil
}

// Dial connects, imports busid, enumerates the device and starts polling its IN endpoint.
func Dial(ctx context.Context, network, address, busid string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	cl, err := Import(c, busid)
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := cl.Enumerate(ctx); err != nil {
		cl.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *Client) nextSeq() uint32 {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	cl.seq++
	return cl.seq
}

func (cl *Client) write(b []byte) error {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	_, err := cl.c.Write(b)
	return err
}

// Submit sends s (its Seqnum set here, DevID from the import) and waits for the RET_SUBMIT.
func (cl *Client) Submit(ctx context.Context, s usbip.Submit) (*usbip.RetSubmitMsg, error) {
	s.Seqnum, s.DevID = cl.nextSeq(), cl.Device.DevID()
	if s.NumberOfPackets == 0 {
		s.NumberOfPackets = 0xffffffff
	}
	r, err := cl.request(ctx, s.Seqnum, s.Direction == usbip.DirIn, s.Encode())
	if err != nil {
		return nil, err
	}
	m, ok := r.(*usbip.RetSubmitMsg)
	if !ok {
		return nil, fmt.Errorf("usbiptest: seqnum %d answered with %T", s.Seqnum, r)
	}
	return m, nil
}

// Unlink unlinks seqnum and returns the RET_UNLINK status.
func (cl *Client) Unlink(ctx context.Context, seqnum uint32) (int32, error) {
	u := usbip.Unlink{Seqnum: cl.nextSeq(), DevID: cl.Device.DevID(), UnlinkSeqnum: seqnum}
	r, err := cl.request(ctx, u.Seqnum, false, u.Encode())
	if err != nil {
		return 0, err
	}
	m, ok := r.(*usbip.RetUnlinkMsg)
	if !ok {
		return 0, fmt.Errorf("usbiptest: unlink answered with %T", r)
	}
	return m.Status, nil
}

func (cl *Client) request(ctx context.Context, seq uint32, in bool, b []byte) (any, error) {
	ch := make(chan any, 1)
	cl.mu.Lock()
	cl.waiting[seq], cl.in[seq] = ch, in
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.waiting, seq)
		cl.mu.Unlock()
	}()
	if err := cl.write(b); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-cl.done:
		return nil, cl.err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (cl *Client) err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.readErr != nil {
		return cl.readErr
	}
	return net.ErrClosed
}

// Control runs one control transfer on endpoint 0.
func (cl *Client) Control(ctx context.Context, setup usbdev.Setup, data []byte) (int32, []byte, error) {
	dir := uint32(usbip.DirOut)
	if setup.In() {
		dir = usbip.DirIn
	}
	r, err := cl.Submit(ctx, usbip.Submit{Direction: dir, Length: uint32(setup.Length), Setup: setup.Bytes(), Data: data})
	if err != nil {
		return 0, nil, err
	}
	return r.Status, r.Data, nil
}

// Enumerate reads the descriptors, selects the configuration, sets the idle rate, reads the
// report descriptor and starts polling the interrupt IN endpoint, as usbhid does.
func (cl *Client) Enumerate(ctx context.Context) error {
	for _, s := range []usbdev.Setup{
		{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0100, Length: 18},
		{RequestType: 0x80, Request: usbdev.ReqGetDescriptor, Value: 0x0200, Length: 255},
		{RequestType: 0x00, Request: usbdev.ReqSetConfiguration, Value: 1},
		{RequestType: 0x21, Request: usbdev.ReqSetIdle},
		{RequestType: 0x81, Request: usbdev.ReqGetDescriptor, Value: 0x2200, Length: uint16(len(usbdev.ReportDescriptor))},
	} {
		st, _, err := cl.Control(ctx, s, nil)
		if err != nil {
			return err
		}
		if st != usbip.StatusOK {
			return fmt.Errorf("usbiptest: %s: status %d", s, st)
		}
	}
	_, err := cl.SubmitIn()
	return err
}

// SubmitIn queues one interrupt IN URB of 64 bytes and returns its seqnum; its report arrives
// through ReadReport, and a new URB is queued each time one completes.
func (cl *Client) SubmitIn() (uint32, error) {
	s := usbip.Submit{Seqnum: cl.nextSeq(), DevID: cl.Device.DevID(), Direction: usbip.DirIn, EP: 1,
		Length: usbdev.ReportSize, NumberOfPackets: 0xffffffff, Interval: usbdev.DefaultInterval}
	cl.mu.Lock()
	cl.irq[s.Seqnum], cl.in[s.Seqnum] = true, true
	cl.mu.Unlock()
	return s.Seqnum, cl.write(s.Encode())
}

// ErrStalled is returned by WriteReport after an interrupt OUT transfer stalled.
var ErrStalled = errors.New("usbiptest: interrupt OUT stalled")

// WriteReport sends one report on the interrupt OUT endpoint without waiting for its completion;
// a failed completion is returned by the next call.
func (cl *Client) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	cl.mu.Lock()
	err := cl.outErr
	cl.outErr = nil
	cl.mu.Unlock()
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s := usbip.Submit{Seqnum: cl.nextSeq(), DevID: cl.Device.DevID(), Direction: usbip.DirOut, EP: 1,
		Length: uint32(len(r)), NumberOfPackets: 0xffffffff, Interval: usbdev.DefaultInterval, Data: r}
	return cl.write(s.Encode())
}

// ReadReport returns the next input report.
func (cl *Client) ReadReport(ctx context.Context) ([]byte, error) {
	select {
	case r := <-cl.inbox:
		return r[:], nil
	case <-cl.done:
		return nil, cl.err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Done is closed when the server has closed the connection.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Close detaches.
func (cl *Client) Close() error {
	err := cl.c.Close()
	<-cl.done
	return err
}

func (cl *Client) readLoop() {
	defer close(cl.done)
	isIn := func(seq uint32) bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return cl.in[seq]
	}
	for {
		r, err := usbip.ReadReply(cl.c, isIn)
		if err != nil {
			cl.mu.Lock()
			cl.readErr = err
			cl.mu.Unlock()
			return
		}
		cl.dispatch(r)
	}
}

func (cl *Client) dispatch(r any) {
	var seq uint32
	switch m := r.(type) {
	case *usbip.RetUnlinkMsg:
		seq = m.Seqnum
	case *usbip.RetSubmitMsg:
		seq = m.Seqnum
		cl.mu.Lock()
		irq := cl.irq[seq]
		delete(cl.irq, seq)
		delete(cl.in, seq)
		_, waited := cl.waiting[seq]
		if !irq && !waited && m.Status != usbip.StatusOK {
			cl.outErr = fmt.Errorf("%w (status %d)", ErrStalled, m.Status)
		}
		cl.mu.Unlock()
		if irq {
			if m.Status == usbip.StatusOK && len(m.Data) == usbdev.ReportSize {
				select {
				case cl.inbox <- [usbdev.ReportSize]byte(m.Data):
				default:
				}
				_, _ = cl.SubmitIn() // keep one IN URB pending, as usbhid does
			}
			cl.notify(seq, r)
			return
		}
	}
	cl.notify(seq, r)
}

func (cl *Client) notify(seq uint32, r any) {
	cl.mu.Lock()
	ch, ok := cl.waiting[seq]
	cl.mu.Unlock()
	if ok {
		ch <- r
	}
}
