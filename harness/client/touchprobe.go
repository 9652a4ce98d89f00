package client

import (
	"context"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// TouchProbe sends req as a makeCredential whose pinUvAuthParam is present and zero-length, with
// pinUvAuthProtocol proto: the request a platform sends to make the user touch the key it means
// (CTAP 2.1 §6.1.2 step 1). The key answers it after a touch with CTAP2_ERR_PIN_NOT_SET or
// CTAP2_ERR_PIN_INVALID, returned as a *CommandError; nil means the key made a credential instead.
// req's own pinUvAuthParam and protocol are ignored.
func (c *Client) TouchProbe(ctx context.Context, req *ctap.MakeCredentialRequest, proto uint64) error {
	b, err := EncodeTouchProbe(req, proto)
	if err != nil {
		return err
	}
	_, err = c.roundTrip(ctx, ctap.CmdMakeCredential, append([]byte{byte(ctap.CmdMakeCredential)}, b...))
	return err
}

// EncodeTouchProbe is TouchProbe's request parameters: req's CBOR map with key 8
// (pinUvAuthParam) an empty byte string, which the struct encoding would leave out.
func EncodeTouchProbe(req *ctap.MakeCredentialRequest, proto uint64) ([]byte, error) {
	r := *req
	r.PinUvAuthParam, r.PinUvAuthProtocol = nil, nil
	b, err := ctap.Marshal(&r)
	if err != nil {
		return nil, fmt.Errorf("client: encoding the touch probe: %w", err)
	}
	var m map[uint64]cbor.RawMessage
	if err := cbor.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("client: encoding the touch probe: %w", err)
	}
	m[8] = cbor.RawMessage{0x40} // a byte string of length 0
	if m[9], err = ctap.Marshal(proto); err != nil {
		return nil, err
	}
	return ctap.Marshal(m)
}
