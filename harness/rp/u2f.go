package rp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/fidolab/fidolab/harness/client"
)

// u2fMakeCredential does what a browser does for a CTAP1-only key (CTAP 2.1 §10.2): U2F_REGISTER
// with rpIdHash as the application, then a WebAuthn authData and a fido-u2f attestation statement
// built from the raw answer. The result looks like a makeCredential answer.
func (r *RP) u2fMakeCredential(ctx context.Context, c *client.Client, cdh [32]byte) (*client.MakeCredentialResult, error) {
	app := sha256.Sum256([]byte(r.id))
	reg, err := c.Register(ctx, cdh, app)
	if err != nil {
		return nil, err
	}
	pub, err := cose.FromUncompressed(cose.AlgES256, reg.PublicKey[:])
	if err != nil {
		return nil, fmt.Errorf("%w: U2F public key: %v", client.ErrMalformedResponse, err)
	}
	pubCBOR, err := pub.Marshal()
	if err != nil {
		return nil, err
	}
	ad := &ctap.AuthData{RPIDHash: app, Flags: ctap.FlagUP,
		Attested: &ctap.AttestedCredential{CredentialID: reg.KeyHandle, PublicKey: pubCBOR}}
	stmt := ctap.AttStmt{Sig: reg.Signature, X5C: [][]byte{reg.Certificate}}
	rawStmt, err := ctap.Marshal(&stmt)
	if err != nil {
		return nil, err
	}
	raw := ad.Marshal()
	parsed, err := ctap.ParseAuthData(raw)
	if err != nil {
		return nil, err
	}
	return &client.MakeCredentialResult{
		Response:     &ctap.MakeCredentialResponse{Fmt: ctap.FormatU2F, AuthData: raw, AttStmt: stmt},
		AuthData:     parsed,
		CredentialID: reg.KeyHandle, PublicKey: pub, RawAuthData: raw, RawAttStmt: rawStmt,
	}, nil
}

// u2fGetAssertion signs with the first key handle of the allowList the key recognises, and turns
// the answer into WebAuthn authData (rpIdHash ‖ flags ‖ counter) and signature.
func (r *RP) u2fGetAssertion(ctx context.Context, c *client.Client, req *ctap.GetAssertionRequest) (*client.AssertionResult, error) {
	if len(req.AllowList) == 0 {
		return nil, errors.New("rp: login: a U2F key has no discoverable credentials")
	}
	app := sha256.Sum256([]byte(r.id))
	var challenge [32]byte
	copy(challenge[:], req.ClientDataHash)
	for _, d := range req.AllowList {
		as, err := c.Authenticate(ctx, u2f.ControlEnforceUserPresence, challenge, app, d.ID)
		if errors.Is(err, u2f.SWWrongData) {
			continue // not this key's handle
		}
		if err != nil {
			return nil, err
		}
		raw := (&ctap.AuthData{RPIDHash: app, Flags: as.UserPresence & ctap.FlagUP, SignCount: as.Counter}).Marshal()
		parsed, err := ctap.ParseAuthData(raw)
		if err != nil {
			return nil, err
		}
		return &client.AssertionResult{
			AuthData: parsed, CredentialID: d.ID, Signature: as.Signature, RawAuthData: raw,
			ClientDataHash: req.ClientDataHash, NumberOfCredentials: 1,
		}, nil
	}
	return nil, fmt.Errorf("rp: login: %w", ctap.ErrNoCredentials)
}
