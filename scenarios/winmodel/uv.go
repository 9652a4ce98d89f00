package winmodel

import (
	"context"
	"errors"
	"slices"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// uv is how one request is user-verified.
type uv struct {
	tok      *client.Token // pinUvAuthToken, or nil
	uvOption bool          // CTAP 2.0 built-in UV: options.uv instead of a token
}

// apply puts the verification into a request's fields.
func (u uv) apply(cdh []byte) (param []byte, proto *uint64, opts *ctap.Options) {
	if u.tok != nil {
		return u.tok.Auth(cdh), u.tok.ProtocolParam(), nil
	}
	if u.uvOption {
		return nil, nil, &ctap.Options{UV: ctap.Bool(true)}
	}
	return nil, nil, nil
}

// applyMakeCredential puts the verification into a makeCredential request: the
// pinUvAuthParam and protocol over cdh, or the uv option beside the options the request
// already has.
func (u uv) applyMakeCredential(req *ctap.MakeCredentialRequest, cdh []byte) {
	var opts *ctap.Options
	req.PinUvAuthParam, req.PinUvAuthProtocol, opts = u.apply(cdh)
	if opts != nil {
		if req.Options == nil {
			req.Options = &ctap.Options{}
		}
		req.Options.UV = opts.UV
	}
}

// verify obtains user verification as Windows does: the PIN the user typed, through a
// pinUvAuthToken (PIN/UV protocol 2 when getInfo offers it, else 1), or the key's built-in UV when
// no PIN was typed and the key has enrolled fingerprints. A non-nil outcome is what the user sees
// when verification fails.
func verify(ctx context.Context, c *client.Client, info *ctap.GetInfoResponse, pin string, perms uint64, rpID string, n *notes) (uv, *result.Outcome, error) {
	pinSet, hasPIN := info.Option("clientPin")
	bioOn, _ := info.Option("uv")
	protos := info.PinUvAuthProtocols
	switch {
	case pin != "" && pinSet:
		tok, err := c.GetPINToken(ctx, pin, perms, rpID)
		if err != nil {
			out, gerr := outcomeOf("PIN", err)
			if gerr == nil && errors.Is(err, ctap.ErrPINInvalid) {
				if left, _, rerr := c.PINRetries(ctx); rerr == nil {
					n.add("wrong PIN; the key reports %d retries left", left)
				}
			}
			return uv{}, &out, gerr
		}
		n.add("UV through the PIN: pinUvAuthToken with PIN/UV protocol %d (getInfo pinUvAuthProtocols %v)", tok.Protocol(), protos)
		return uv{tok: tok}, nil, nil
	case pin == "" && bioOn:
		if v, _ := info.Option("pinUvAuthToken"); !v {
			n.add("UV built in, through options.uv (CTAP 2.0 key)")
			return uv{uvOption: true}, nil, nil
		}
		tok, err := c.GetUVToken(ctx, perms, rpID)
		if err != nil {
			out, gerr := outcomeOf("built-in UV", err)
			return uv{}, &out, gerr
		}
		n.add("UV built in: pinUvAuthToken via getPinUvAuthTokenUsingUvWithPermissions, protocol %d", tok.Protocol())
		return uv{tok: tok}, nil, nil
	case hasPIN && !pinSet:
		o := fail(host.CodePINRequired, "the key has no PIN set (getInfo clientPin=false)")
		return uv{}, &o, nil
	case !hasPIN && !bioOn:
		o := fail(host.CodeNoUserVerification, "the key offers neither clientPin nor built-in UV")
		return uv{}, &o, nil
	}
	o := fail(host.CodePINRequired, "no PIN typed and no built-in UV enrolled")
	return uv{}, &o, nil
}

// pinProtocolOffered reports the protocol the client will use, for notes before any token exists.
func pinProtocolOffered(info *ctap.GetInfoResponse) int {
	if slices.Contains(info.PinUvAuthProtocols, 2) {
		return 2
	}
	return 1
}
