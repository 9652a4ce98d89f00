// Package client is a CTAP 2.1 and CTAP1/U2F host, the part of a platform (libfido2, a browser,
// Windows) that talks to a security key: it builds requests with the shared ctap codec, runs the
// PIN/UV auth protocols, and decodes and checks what the key answers. It works over any
// Transport, so the same code drives the in-process key, a report socket or a real device.
package client

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/fidolab/fidolab/ctap"
)

// Transport carries one CTAP2 request or one U2F APDU and returns the answer.
// *ctaphid.Client satisfies it.
type Transport interface {
	// CBOR sends command byte ‖ CBOR parameters and returns status byte ‖ CBOR response.
	CBOR(ctx context.Context, req []byte) ([]byte, error)
	// Msg sends a U2F request APDU and returns the response APDU (data ‖ SW1 SW2).
	Msg(ctx context.Context, apdu []byte) ([]byte, error)
}

// ErrMalformedResponse marks an answer the client could not decode or that breaks the spec.
// It never wraps a ctap.Status, so a broken answer is not mistaken for a status the key sent.
var ErrMalformedResponse = errors.New("client: malformed response")

// CommandError is a non-OK CTAP status answered to a command. errors.As(err, &status) with a
// ctap.Status, and errors.Is(err, ctap.ErrPINInvalid), both reach the status.
type CommandError struct {
	Command string
	Status  ctap.Status
}

func (e *CommandError) Error() string { return e.Command + ": key answered " + e.Status.String() }

// Unwrap exposes the status.
func (e *CommandError) Unwrap() error { return e.Status }

// Option configures a Client.
type Option func(*Client)

// WithRecorder calls fn after every CTAP2 request and U2F APDU with the exchange, including
// failed ones. fn runs on the caller's goroutine; the exchange's byte slices are copies it may keep.
func WithRecorder(fn func(Exchange)) Option { return func(c *Client) { c.rec = fn } }

// WithPINProtocol forces PIN/UV auth protocol v (1 or 2) instead of the key's preferred one.
func WithPINProtocol(v int) Option { return func(c *Client) { c.forceProtocol = v } }

// WithRand sets the randomness for ephemeral key agreement keys and IVs; nil means crypto/rand.
func WithRand(r io.Reader) Option { return func(c *Client) { c.rand = r } }

// WithU2FPollInterval sets how long the client waits between U2F retries while the key wants
// a touch (0x6985); the default is 100 ms, what libfido2 uses.
func WithU2FPollInterval(d time.Duration) Option { return func(c *Client) { c.u2fPoll = d } }

// Client is a host-side CTAP client on one transport. Its methods are safe for concurrent use
// only in the sense that each call is a complete exchange; the key itself handles one at a time.
type Client struct {
	t             Transport
	rec           func(Exchange)
	forceProtocol int
	rand          io.Reader
	u2fPoll       time.Duration

	mu      sync.Mutex
	info    *ctap.GetInfoResponse     // last getInfo answer, to pick protocols, commands and sizes
	pending *ctap.GetAssertionRequest // the getAssertion that getNextAssertion continues
}

// New returns a client on t.
func New(t Transport, opts ...Option) *Client {
	c := &Client{t: t, rand: rand.Reader, u2fPoll: 100 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	return c
}

// call sends one CTAP2 command. params nil sends the command byte alone. resp nil ignores the
// response body. A non-OK status returns a *CommandError.
func (c *Client) call(ctx context.Context, cmd ctap.Command, params, resp any) error {
	body, err := c.callRaw(ctx, cmd, params)
	if err != nil {
		return err
	}
	if resp == nil || len(body) == 0 {
		return nil
	}
	if err := ctap.DecMode().Unmarshal(body, resp); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformedResponse, cmd, err)
	}
	return nil
}

// callRaw sends one CTAP2 command and returns the response body after the status byte.
func (c *Client) callRaw(ctx context.Context, cmd ctap.Command, params any) ([]byte, error) {
	req := []byte{byte(cmd)}
	if params != nil {
		b, err := ctap.Marshal(params)
		if err != nil {
			return nil, fmt.Errorf("client: encoding %s: %w", cmd, err)
		}
		req = append(req, b...)
	}
	return c.roundTrip(ctx, cmd, req)
}

// rpIDHash is SHA-256 of the RP ID, the value authData and credential management carry.
func rpIDHash(rpID string) [32]byte { return sha256.Sum256([]byte(rpID)) }

// roundTrip sends a complete request (command byte first) and returns the response body after
// the status byte, recording the exchange.
func (c *Client) roundTrip(ctx context.Context, cmd ctap.Command, req []byte) ([]byte, error) {
	start := time.Now()
	resp, err := c.t.CBOR(ctx, req)
	ex := Exchange{Command: cmd.String(), Cmd: cmd, Request: clone(req), Response: clone(resp), Duration: time.Since(start), Err: err}
	if err == nil && len(resp) > 0 {
		ex.Status = ctap.Status(resp[0])
	}
	c.record(ex)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", cmd, err)
	}
	if len(resp) == 0 {
		return nil, fmt.Errorf("%w: %s: empty response", ErrMalformedResponse, cmd)
	}
	if s := ctap.Status(resp[0]); s != ctap.StatusOK {
		return nil, &CommandError{Command: cmd.String(), Status: s}
	}
	return resp[1:], nil
}

func (c *Client) record(ex Exchange) {
	if c.rec != nil {
		c.rec(ex)
	}
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// GetInfo asks the key for its capabilities and remembers the answer for later commands.
func (c *Client) GetInfo(ctx context.Context) (*ctap.GetInfoResponse, error) {
	var info ctap.GetInfoResponse
	if err := c.call(ctx, ctap.CmdGetInfo, nil, &info); err != nil {
		return nil, err
	}
	if len(info.Versions) == 0 || len(info.AAGUID) != 16 {
		return nil, fmt.Errorf("%w: getInfo lacks versions or a 16-byte AAGUID", ErrMalformedResponse)
	}
	c.mu.Lock()
	c.info = &info
	c.mu.Unlock()
	return &info, nil
}

// Info returns the remembered getInfo answer, asking the key the first time.
func (c *Client) Info(ctx context.Context) (*ctap.GetInfoResponse, error) {
	c.mu.Lock()
	info := c.info
	c.mu.Unlock()
	if info != nil {
		return info, nil
	}
	return c.GetInfo(ctx)
}

// Reset erases the key's credentials and PIN. Keys accept it only shortly after power-up and
// with user presence.
func (c *Client) Reset(ctx context.Context) error {
	c.mu.Lock()
	c.info = nil // the PIN and options change; ask again next time
	c.mu.Unlock()
	return c.call(ctx, ctap.CmdReset, nil, nil)
}

// Selection asks the user to touch this key, to pick it among several.
func (c *Client) Selection(ctx context.Context) error {
	return c.call(ctx, ctap.CmdSelection, nil, nil)
}

// maxMsgSize is the key's advertised limit, 1024 when it does not say (CTAP 2.1 §6.4).
func (c *Client) maxMsgSize(ctx context.Context) (int, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.MaxMsgSize == 0 {
		return 1024, nil
	}
	return int(min(info.MaxMsgSize, ctap.MaxMessageSize)), nil
}
