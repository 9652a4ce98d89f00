package ctaphid

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// ReportConn carries raw 64-byte reports between a host and a device. Implementations allow one
// WriteReport and one ReadReport at the same time, and WriteReport does not keep r after it returns.
// The report ReadReport returns may be overwritten by the next ReadReport: a caller copies what it
// keeps (an in-process connection then hands reports over without allocating).
type ReportConn interface {
	WriteReport(ctx context.Context, r []byte) error
	ReadReport(ctx context.Context) ([]byte, error)
	Close() error
}

// TimedReportConn is a ReportConn that also tells when the device produced each report, on the
// device's clock (transport/inproc's Conn, over Device.OpenTimed): a host model on a virtual
// clock measures the key's silences with it.
type TimedReportConn interface {
	ReportConn
	ReadReportAt(ctx context.Context) (r []byte, at time.Time, err error)
}

// ReportsWriter is a ReportConn that writes several whole reports at once (a socket: one write
// system call per message instead of one per report). The Client writes every message it sends
// with one WriteReports call when its connection has it.
type ReportsWriter interface {
	// WriteReports writes reports, a whole number of 64-byte reports, in order.
	WriteReports(ctx context.Context, reports []byte) error
}

// PendingRunner is a ReportConn to a Device in the same process that can run the CBOR request the
// host just wrote on the host's goroutine (Port.RunPending; transport/inproc's Conn). The Client
// calls it after writing a CBOR request and before reading the answer, so an in-process request
// costs no hand-off between goroutines.
type PendingRunner interface {
	RunPending() bool
}

// InitInfo is a device's answer to CTAPHID_INIT.
type InitInfo struct {
	CID             uint32
	ProtocolVersion byte
	Major           byte
	Minor           byte
	Build           byte
	Capabilities    byte
}

// HIDError is a CTAPHID_ERROR response. errors.Is(err, ErrChannelBusy) and the like work through Unwrap.
type HIDError struct {
	CID  uint32
	Code ErrorCode
}

func (e *HIDError) Error() string {
	return fmt.Sprintf("ctaphid: device answered %s on channel %08x", e.Code.String(), e.CID)
}

// Unwrap returns the error code.
func (e *HIDError) Unwrap() error { return e.Code }

// cancelDrain bounds the wait for the final response after a CANCEL; a key is expected to answer
// CTAP2_ERR_KEEPALIVE_CANCEL at once.
const cancelDrain = 2 * time.Second

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithKeepalive sets a function called with the status byte of every KEEPALIVE the device sends.
func WithKeepalive(fn func(status byte)) ClientOption { return func(c *Client) { c.onKeepalive = fn } }

// WithNonceReader sets the source of INIT nonces (crypto/rand by default).
func WithNonceReader(r io.Reader) ClientOption { return func(c *Client) { c.rand = r } }

// Client is the host side of CTAPHID on one connection: one channel, one transaction at a time.
type Client struct {
	conn        ReportConn
	onKeepalive func(byte)
	rand        io.Reader

	txMu sync.Mutex  // one transaction at a time
	rx   Reassembler // guarded by txMu
	wMu  sync.Mutex  // Cancel writes while a transaction reads
	wbuf [ReportSize]byte
	wall []byte // a whole message's reports, for a ReportsWriter

	mu       sync.Mutex
	cid      uint32
	info     InitInfo
	inFlight bool // a CBOR transaction is waiting for its response
	stale    bool // a transaction was abandoned: its late response may still arrive on the channel
}

// NewClient returns a Client on conn. It allocates no channel until Init or the first transaction.
func NewClient(conn ReportConn, opts ...ClientOption) *Client {
	c := &Client{conn: conn, rand: rand.Reader}
	for _, o := range opts {
		o(c)
	}
	return c
}

// CID returns the client's channel, 0 before Init.
func (c *Client) CID() uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cid
}

// Init allocates a new channel with CTAPHID_INIT on the broadcast channel, checking that the answer
// carries the nonce it sent.
func (c *Client) Init(ctx context.Context) (InitInfo, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	return c.init(ctx)
}

func (c *Client) init(ctx context.Context) (InitInfo, error) {
	var nonce [8]byte
	if _, err := io.ReadFull(c.rand, nonce[:]); err != nil {
		return InitInfo{}, fmt.Errorf("ctaphid: drawing INIT nonce: %w", err)
	}
	if err := c.writeMessage(ctx, BroadcastCID, CmdInit, nonce[:]); err != nil {
		return InitInfo{}, err
	}
	for {
		msg, err := c.readMessage(ctx, BroadcastCID)
		if err != nil {
			return InitInfo{}, err
		}
		switch {
		case msg.Cmd == CmdError && len(msg.Payload) > 0:
			return InitInfo{}, &HIDError{CID: BroadcastCID, Code: ErrorCode(msg.Payload[0])}
		case msg.Cmd != CmdInit || len(msg.Payload) < 17 || !bytes.Equal(msg.Payload[:8], nonce[:]):
			continue // an answer to another host's INIT
		}
		p := msg.Payload
		info := InitInfo{CID: binary.BigEndian.Uint32(p[8:]), ProtocolVersion: p[12],
			Major: p[13], Minor: p[14], Build: p[15], Capabilities: p[16]}
		if info.CID == 0 || info.CID == BroadcastCID {
			return InitInfo{}, fmt.Errorf("ctaphid: device allocated reserved channel %08x", info.CID)
		}
		c.mu.Lock()
		c.cid, c.info, c.stale = info.CID, info, false
		c.mu.Unlock()
		return info, nil
	}
}

// Transact sends one request on the client's channel and returns the response payload, skipping
// KEEPALIVE messages. A CTAPHID_ERROR answer returns a *HIDError. If ctx ends while a CBOR request runs,
// Transact sends CTAPHID_CANCEL, waits for the final response and returns it with ctx's error.
func (c *Client) Transact(ctx context.Context, cmd byte, payload []byte) ([]byte, error) {
	c.txMu.Lock()
	defer c.txMu.Unlock()
	c.mu.Lock()
	cid, stale := c.cid, c.stale
	c.mu.Unlock()
	if cid == 0 || stale {
		info, err := c.init(ctx)
		if err != nil {
			return nil, err
		}
		cid = info.CID
	}
	if cmd == CmdCBOR {
		c.setInFlight(true) // before the request leaves: Cancel must find it from then on
		defer c.setInFlight(false)
	}
	if err := c.writeMessage(ctx, cid, cmd, payload); err != nil {
		c.markStale()
		return nil, err
	}
	rctx, cancelled := ctx, false
	if r, ok := c.conn.(PendingRunner); ok && cmd == CmdCBOR {
		if c.runPending(ctx, r) {
			// CANCEL went out while the request ran: read its final response as below.
			cancelled = true
			dctx, stop := context.WithTimeout(context.Background(), cancelDrain)
			defer stop()
			rctx = dctx
		}
	}
	for {
		msg, err := c.readMessage(rctx, cid)
		if err != nil {
			if cmd == CmdCBOR && !cancelled && ctx.Err() != nil {
				cancelled = true
				dctx, stop := context.WithTimeout(context.Background(), cancelDrain)
				defer stop()
				rctx = dctx
				if err := c.writeMessage(dctx, cid, CmdCancel, nil); err == nil {
					continue
				}
			}
			c.markStale()
			if cancelled {
				return nil, ctx.Err()
			}
			return nil, err
		}
		switch msg.Cmd {
		case CmdKeepalive:
			if c.onKeepalive != nil && len(msg.Payload) > 0 {
				c.onKeepalive(msg.Payload[0])
			}
			continue
		case CmdError:
			code := ErrOther
			if len(msg.Payload) > 0 {
				code = ErrorCode(msg.Payload[0])
			}
			return nil, &HIDError{CID: cid, Code: code}
		case cmd:
			if cancelled {
				return msg.Payload, ctx.Err()
			}
			return msg.Payload, nil
		default:
			c.markStale()
			return nil, fmt.Errorf("ctaphid: answer to command %02x has command %02x", cmd, msg.Cmd)
		}
	}
}

// runPending runs the request just written on this goroutine. The host's part goes on meanwhile:
// if ctx ends during a CBOR request, CANCEL is sent as Transact would send it; runPending then
// reports true and Transact reads the final response as after any CANCEL.
func (c *Client) runPending(ctx context.Context, r PendingRunner) (cancelled bool) {
	if ctx.Done() == nil {
		r.RunPending()
		return false
	}
	sent := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.Cancel()
		close(sent)
	})
	r.RunPending()
	if stop() {
		return false
	}
	<-sent // the CANCEL is on its way: its answer is what the request ends with
	return true
}

// Cancel sends CTAPHID_CANCEL on the client's channel if a CBOR request is in flight; the request
// then ends with the device's CTAP2_ERR_KEEPALIVE_CANCEL response.
func (c *Client) Cancel() error {
	c.mu.Lock()
	cid, inFlight := c.cid, c.inFlight
	c.mu.Unlock()
	if !inFlight {
		return nil
	}
	ctx, stop := context.WithTimeout(context.Background(), cancelDrain)
	defer stop()
	return c.writeMessage(ctx, cid, CmdCancel, nil)
}

// CBOR sends a CTAP2 request (command byte + CBOR) and returns the response (status byte + CBOR).
func (c *Client) CBOR(ctx context.Context, req []byte) ([]byte, error) {
	return c.Transact(ctx, CmdCBOR, req)
}

// Msg sends a CTAP1/U2F APDU and returns the response APDU.
func (c *Client) Msg(ctx context.Context, apdu []byte) ([]byte, error) {
	return c.Transact(ctx, CmdMsg, apdu)
}

// Ping sends data and returns the echo, checking it matches.
func (c *Client) Ping(ctx context.Context, data []byte) ([]byte, error) {
	resp, err := c.Transact(ctx, CmdPing, data)
	if err == nil && !bytes.Equal(resp, data) {
		return resp, errors.New("ctaphid: PING echo differs from what was sent")
	}
	return resp, err
}

// Wink asks the device to identify itself.
func (c *Client) Wink(ctx context.Context) error {
	_, err := c.Transact(ctx, CmdWink, nil)
	return err
}

// Lock locks the device to the client's channel for seconds (0 releases, at most MaxLockSeconds).
func (c *Client) Lock(ctx context.Context, seconds byte) error {
	_, err := c.Transact(ctx, CmdLock, []byte{seconds})
	return err
}

func (c *Client) setInFlight(v bool) {
	c.mu.Lock()
	c.inFlight = v
	c.mu.Unlock()
}

func (c *Client) markStale() {
	c.mu.Lock()
	c.stale = true
	c.mu.Unlock()
}

func (c *Client) writeMessage(ctx context.Context, cid uint32, cmd byte, payload []byte) error {
	c.wMu.Lock()
	defer c.wMu.Unlock()
	var err error
	if w, ok := c.conn.(ReportsWriter); ok {
		c.wall = c.wall[:0]
		if err = eachPacket(&c.wbuf, cid, cmd, payload, c.appendReport); err == nil {
			err = w.WriteReports(ctx, c.wall)
		}
	} else {
		err = eachPacket(&c.wbuf, cid, cmd, payload, func(r []byte) error { return c.conn.WriteReport(ctx, r) })
	}
	if err != nil {
		return fmt.Errorf("ctaphid: writing command %02x: %w", cmd, err)
	}
	return nil
}

func (c *Client) appendReport(r []byte) error {
	c.wall = append(c.wall, r...)
	return nil
}

// readMessage returns the next complete message on cid. Reports on other channels are skipped: hidraw
// delivers every input report to every reader.
func (c *Client) readMessage(ctx context.Context, cid uint32) (Message, error) {
	rx := &c.rx
	rx.Reset()
	for {
		r, err := c.conn.ReadReport(ctx)
		if err != nil {
			return Message{}, fmt.Errorf("ctaphid: reading report: %w", err)
		}
		if len(r) != ReportSize || ReportCID(r) != cid {
			continue
		}
		msg, ok, err := rx.Add(r)
		if err != nil {
			return Message{}, fmt.Errorf("ctaphid: malformed response: %w", err)
		}
		if ok {
			return msg, nil
		}
	}
}
