package client

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// Token is a pinUvAuthToken the key issued, with the protocol it belongs to. It never prints
// its bytes: String, GoString and Format all redact.
type Token struct {
	proto pinuv.Protocol
	token []byte
	// Permissions and RPID are what the token was requested with (0 and "" for a CTAP 2.0 token).
	Permissions uint64
	RPID        string
}

// Protocol returns the PIN/UV auth protocol number the token works with.
func (t *Token) Protocol() int { return t.proto.Version() }

// ProtocolParam returns the protocol number as the optional request field wants it.
func (t *Token) ProtocolParam() *uint64 { return ctap.Uint(uint64(t.proto.Version())) }

// Auth computes pinUvAuthParam over msg. A CTAP 2.1 key accepts a token for one makeCredential
// or getAssertion; the mc and ga permissions are gone after it.
func (t *Token) Auth(msg []byte) []byte { return t.proto.Authenticate(t.token, msg) }

// String redacts the token.
func (t *Token) String() string {
	if t == nil {
		return "pinUvAuthToken(nil)"
	}
	return fmt.Sprintf("pinUvAuthToken(protocol %d, permissions 0x%02x, <redacted %d bytes>)", t.proto.Version(), t.Permissions, len(t.token))
}

// GoString redacts the token under %#v too.
func (t *Token) GoString() string { return t.String() }

// Format redacts the token under every verb.
func (t *Token) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// protocol picks the PIN/UV auth protocol: the forced one, else 2 when the key offers it, else 1.
func (c *Client) protocol(ctx context.Context) (pinuv.Protocol, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	v := c.forceProtocol
	if v == 0 {
		switch {
		case slices.Contains(info.PinUvAuthProtocols, 2):
			v = 2
		default:
			// CTAP 2.0 keys may leave the list out; protocol one is then implied.
			v = 1
		}
	}
	p, ok := pinuv.ByVersion(v)
	if !ok {
		return nil, fmt.Errorf("client: PIN/UV auth protocol %d unknown (this client speaks 1 and 2)", v)
	}
	if v == 2 {
		p = pinuv.V2{Rand: c.rand}
	}
	return p, nil
}

// session is one key agreement with the key: the platform key to send and the shared secret.
type session struct {
	proto       pinuv.Protocol
	platformKey []byte // COSE key, encoded
	secret      []byte
}

func (c *Client) clientPIN(ctx context.Context, req *ctap.ClientPINRequest) (*ctap.ClientPINResponse, error) {
	var resp ctap.ClientPINResponse
	if err := c.call(ctx, ctap.CmdClientPIN, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// newSession runs getKeyAgreement and encapsulates a fresh shared secret.
func (c *Client) newSession(ctx context.Context, p pinuv.Protocol) (*session, error) {
	resp, err := c.clientPIN(ctx, &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(p.Version())), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)})
	if err != nil {
		return nil, err
	}
	peer, err := cose.Unmarshal(resp.KeyAgreement)
	if err != nil {
		return nil, fmt.Errorf("%w: getKeyAgreement: %v", ErrMalformedResponse, err)
	}
	pk, secret, err := pinuv.Encapsulate(p, c.rand, peer)
	if err != nil {
		return nil, fmt.Errorf("%w: getKeyAgreement: %v", ErrMalformedResponse, err)
	}
	enc, err := pk.Marshal()
	if err != nil {
		return nil, fmt.Errorf("client: encoding platform key: %w", err)
	}
	return &session{proto: p, platformKey: enc, secret: secret}, nil
}

func (s *session) encrypt(plaintext []byte) ([]byte, error) {
	ct, err := s.proto.Encrypt(s.secret, plaintext)
	if err != nil {
		return nil, fmt.Errorf("client: encrypting: %w", err)
	}
	return ct, nil
}

// SetPIN sets the first PIN on a key that has none.
func (c *Client) SetPIN(ctx context.Context, pin string) error {
	padded, err := pinuv.PadPIN(pin)
	if err != nil {
		return err
	}
	p, err := c.protocol(ctx)
	if err != nil {
		return err
	}
	s, err := c.newSession(ctx, p)
	if err != nil {
		return err
	}
	newPinEnc, err := s.encrypt(padded)
	if err != nil {
		return err
	}
	_, err = c.clientPIN(ctx, &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(p.Version())), SubCommand: ctap.Uint(ctap.PINSetPIN),
		KeyAgreement: s.platformKey, PinUvAuthParam: p.Authenticate(s.secret, newPinEnc), NewPinEnc: newPinEnc,
	})
	c.forgetInfo()
	return err
}

// ChangePIN replaces the PIN.
func (c *Client) ChangePIN(ctx context.Context, oldPIN, newPIN string) error {
	padded, err := pinuv.PadPIN(newPIN)
	if err != nil {
		return err
	}
	p, err := c.protocol(ctx)
	if err != nil {
		return err
	}
	s, err := c.newSession(ctx, p)
	if err != nil {
		return err
	}
	pinHashEnc, err := s.encrypt(pinuv.PINHash(oldPIN))
	if err != nil {
		return err
	}
	newPinEnc, err := s.encrypt(padded)
	if err != nil {
		return err
	}
	msg := append(bytes.Clone(newPinEnc), pinHashEnc...)
	_, err = c.clientPIN(ctx, &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(p.Version())), SubCommand: ctap.Uint(ctap.PINChangePIN),
		KeyAgreement: s.platformKey, PinUvAuthParam: p.Authenticate(s.secret, msg),
		NewPinEnc: newPinEnc, PinHashEnc: pinHashEnc,
	})
	c.forgetInfo()
	return err
}

// PINRetries returns the PIN retries left and whether the key wants a power cycle before the
// next PIN attempt (absent means false).
func (c *Client) PINRetries(ctx context.Context) (retries int, powerCycle bool, err error) {
	req := &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetRetries)}
	if p, perr := c.protocol(ctx); perr == nil {
		req.PinUvAuthProtocol = ctap.Uint(uint64(p.Version()))
	}
	resp, err := c.clientPIN(ctx, req)
	if err != nil {
		return 0, false, err
	}
	if resp.PINRetries == nil {
		return 0, false, fmt.Errorf("%w: getPINRetries: pinRetries missing", ErrMalformedResponse)
	}
	return int(min(*resp.PINRetries, 255)), resp.PowerCycleState != nil && *resp.PowerCycleState, nil
}

// UVRetries returns the built-in UV attempts left.
func (c *Client) UVRetries(ctx context.Context) (int, error) {
	req := &ctap.ClientPINRequest{SubCommand: ctap.Uint(ctap.PINGetUVRetries)}
	if p, perr := c.protocol(ctx); perr == nil {
		req.PinUvAuthProtocol = ctap.Uint(uint64(p.Version()))
	}
	resp, err := c.clientPIN(ctx, req)
	if err != nil {
		return 0, err
	}
	if resp.UVRetries == nil {
		return 0, fmt.Errorf("%w: getUVRetries: uvRetries missing", ErrMalformedResponse)
	}
	return int(min(*resp.UVRetries, 255)), nil
}

// GetPINToken obtains a pinUvAuthToken with the PIN. Keys with the pinUvAuthToken option get
// getPinUvAuthTokenUsingPinWithPermissions (perms and rpID, which may be empty); CTAP 2.0 keys
// get the legacy getPinToken, whose token carries all permissions.
func (c *Client) GetPINToken(ctx context.Context, pin string, perms uint64, rpID string) (*Token, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	p, err := c.protocol(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.newSession(ctx, p)
	if err != nil {
		return nil, err
	}
	pinHashEnc, err := s.encrypt(pinuv.PINHash(pin))
	if err != nil {
		return nil, err
	}
	req := &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(p.Version())), SubCommand: ctap.Uint(ctap.PINGetPinToken),
		KeyAgreement: s.platformKey, PinHashEnc: pinHashEnc,
	}
	if v, _ := info.Option("pinUvAuthToken"); v {
		req.SubCommand = ctap.Uint(ctap.PINGetPinUvAuthTokenUsingPinWithPerms)
		req.Permissions = ctap.Uint(perms)
		if rpID != "" {
			req.RPID = &rpID
		}
	} else {
		perms, rpID = 0, ""
	}
	return c.requestToken(ctx, s, req, perms, rpID)
}

// GetUVToken obtains a pinUvAuthToken through the key's built-in user verification.
func (c *Client) GetUVToken(ctx context.Context, perms uint64, rpID string) (*Token, error) {
	p, err := c.protocol(ctx)
	if err != nil {
		return nil, err
	}
	s, err := c.newSession(ctx, p)
	if err != nil {
		return nil, err
	}
	req := &ctap.ClientPINRequest{
		PinUvAuthProtocol: ctap.Uint(uint64(p.Version())), SubCommand: ctap.Uint(ctap.PINGetPinUvAuthTokenUsingUvWithPerms),
		KeyAgreement: s.platformKey, Permissions: ctap.Uint(perms),
	}
	if rpID != "" {
		req.RPID = &rpID
	}
	return c.requestToken(ctx, s, req, perms, rpID)
}

func (c *Client) requestToken(ctx context.Context, s *session, req *ctap.ClientPINRequest, perms uint64, rpID string) (*Token, error) {
	resp, err := c.clientPIN(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(resp.PinUvAuthToken) == 0 {
		return nil, fmt.Errorf("%w: clientPIN: pinUvAuthToken missing", ErrMalformedResponse)
	}
	tok, err := s.proto.Decrypt(s.secret, resp.PinUvAuthToken)
	if err != nil {
		return nil, fmt.Errorf("%w: clientPIN: decrypting token: %v", ErrMalformedResponse, err)
	}
	// Protocol one tokens may be 16 or 32 bytes; protocol two tokens are exactly 32.
	if len(tok) != pinuv.TokenSize && (s.proto.Version() != 1 || len(tok) != 16) {
		return nil, fmt.Errorf("%w: clientPIN: token is %d bytes", ErrMalformedResponse, len(tok))
	}
	return &Token{proto: s.proto, token: tok, Permissions: perms, RPID: rpID}, nil
}

func (c *Client) forgetInfo() {
	c.mu.Lock()
	c.info = nil
	c.mu.Unlock()
}
