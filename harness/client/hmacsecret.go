package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// HMACSecret is one hmac-secret evaluation: the extension input to send and the shared secret
// that decrypts the output. Use it for a single request.
type HMACSecret struct {
	s     *session
	nSalt int
}

// String keeps the shared secret out of logs.
func (h *HMACSecret) String() string {
	return fmt.Sprintf("hmac-secret(%d salts, <redacted>)", h.nSalt)
}

// Format redacts under every verb, %#v included.
func (h *HMACSecret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(h.String())) }

// NewHMACSecret prepares an hmac-secret input for salt1 and, optionally, salt2 (each 32 bytes):
// a fresh key agreement with the key, saltEnc and saltAuth.
func (c *Client) NewHMACSecret(ctx context.Context, salt1, salt2 []byte) (*HMACSecret, *ctap.HMACSecretInput, error) {
	if len(salt1) != 32 || (salt2 != nil && len(salt2) != 32) {
		return nil, nil, errors.New("client: hmac-secret salts are 32 bytes each")
	}
	p, err := c.protocol(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.newSession(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	salts := append(bytes.Clone(salt1), salt2...)
	saltEnc, err := s.encrypt(salts)
	if err != nil {
		return nil, nil, err
	}
	in := &ctap.HMACSecretInput{
		KeyAgreement: s.platformKey, SaltEnc: saltEnc, SaltAuth: p.Authenticate(s.secret, saltEnc),
	}
	// Protocol one is the default; CTAP 2.0 keys know no key 4, so send it only when needed.
	if p.Version() != 1 {
		in.PinUvAuthProtocol = ctap.Uint(uint64(p.Version()))
	}
	return &HMACSecret{s: s, nSalt: len(salts) / 32}, in, nil
}

// Output decrypts the hmac-secret extension output of an assertion's authData into one output
// per salt.
func (h *HMACSecret) Output(ad *ctap.AuthData) (out1, out2 []byte, err error) {
	if ad == nil || len(ad.Extensions) == 0 {
		return nil, nil, fmt.Errorf("%w: no extension outputs", ErrMalformedResponse)
	}
	var ext map[string]cbor.RawMessage
	if err := ctap.DecMode().Unmarshal(ad.Extensions, &ext); err != nil {
		return nil, nil, fmt.Errorf("%w: extension outputs: %v", ErrMalformedResponse, err)
	}
	raw, ok := ext["hmac-secret"]
	if !ok {
		return nil, nil, fmt.Errorf("%w: no hmac-secret output", ErrMalformedResponse)
	}
	var enc []byte
	if err := ctap.DecMode().Unmarshal(raw, &enc); err != nil {
		return nil, nil, fmt.Errorf("%w: hmac-secret output is not a byte string", ErrMalformedResponse)
	}
	pt, err := h.s.proto.Decrypt(h.s.secret, enc)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: hmac-secret output: %v", ErrMalformedResponse, err)
	}
	if len(pt) != 32*h.nSalt {
		return nil, nil, fmt.Errorf("%w: hmac-secret output is %d bytes for %d salts", ErrMalformedResponse, len(pt), h.nSalt)
	}
	if h.nSalt == 2 {
		return pt[:32], pt[32:], nil
	}
	return pt, nil, nil
}
