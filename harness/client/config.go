package client

import (
	"bytes"
	"context"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
)

// Config runs authenticatorConfig with a token that has the acfg permission (nil for a key
// without PIN or UV, which accepts unauthenticated config).
type Config struct {
	c   *Client
	tok *Token
}

// Config returns the authenticatorConfig commands authorised by tok.
func (c *Client) Config(tok *Token) *Config { return &Config{c: c, tok: tok} }

func (cf *Config) do(ctx context.Context, sub uint64, params any) error {
	req := &ctap.ConfigRequest{SubCommand: ctap.Uint(sub)}
	if params != nil {
		b, err := ctap.Marshal(params)
		if err != nil {
			return fmt.Errorf("client: encoding subCommandParams: %w", err)
		}
		req.SubCommandParams = b
	}
	if cf.tok != nil {
		// 32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams (CTAP 2.1 §6.11).
		msg := bytes.Repeat([]byte{0xff}, 32)
		msg = append(msg, byte(ctap.CmdConfig), byte(sub))
		msg = append(msg, req.SubCommandParams...)
		req.PinUvAuthProtocol = cf.tok.ProtocolParam()
		req.PinUvAuthParam = cf.tok.Auth(msg)
	}
	err := cf.c.call(ctx, ctap.CmdConfig, req, nil)
	cf.c.forgetInfo() // every subcommand changes what getInfo reports
	return err
}

// EnableEnterpriseAttestation turns on enterprise attestation.
func (cf *Config) EnableEnterpriseAttestation(ctx context.Context) error {
	return cf.do(ctx, ctap.ConfigEnableEnterpriseAttestation, nil)
}

// ToggleAlwaysUV flips the alwaysUv option.
func (cf *Config) ToggleAlwaysUV(ctx context.Context) error {
	return cf.do(ctx, ctap.ConfigToggleAlwaysUV, nil)
}

// SetMinPINLength raises the minimum PIN length (n 0 leaves it), lists RP IDs that may read it
// through the minPinLength extension, and with force requires a PIN change.
func (cf *Config) SetMinPINLength(ctx context.Context, n uint64, rpIDs []string, force bool) error {
	p := &ctap.SetMinPINLengthParams{MinPINLengthRPIDs: rpIDs}
	if n > 0 {
		p.NewMinPINLength = ctap.Uint(n)
	}
	if force {
		p.ForceChangePIN = ctap.Bool(true)
	}
	var params any = p
	if n == 0 && len(rpIDs) == 0 && !force {
		params = nil
	}
	return cf.do(ctx, ctap.ConfigSetMinPINLength, params)
}
