package client

import (
	"bytes"
	"context"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fxamacker/cbor/v2"
)

// MakeCredentialResult is a decoded and checked makeCredential answer.
type MakeCredentialResult struct {
	Response     *ctap.MakeCredentialResponse
	AuthData     *ctap.AuthData
	CredentialID []byte
	PublicKey    cose.Key
	// RawAuthData is the authenticator data exactly as signed.
	RawAuthData []byte
	// RawAttStmt is the attestation statement exactly as sent, for formats with fields AttStmt lacks.
	RawAttStmt cbor.RawMessage
}

// AttestationObject returns the WebAuthn attestationObject ({"fmt", "attStmt", "authData"}),
// what a browser hands to a relying party.
func (r *MakeCredentialResult) AttestationObject() ([]byte, error) {
	return ctap.Marshal(map[string]any{
		"fmt":      r.Response.Fmt,
		"attStmt":  r.RawAttStmt,
		"authData": r.RawAuthData,
	})
}

// rawMakeCredential keeps the attestation statement undecoded.
type rawMakeCredential struct {
	Fmt      string          `cbor:"1,keyasint"`
	AuthData []byte          `cbor:"2,keyasint"`
	AttStmt  cbor.RawMessage `cbor:"3,keyasint"`
}

// MakeCredential registers a credential and checks that the answer is well formed: authData
// with attested credential data whose rpIdHash matches the request, and a valid COSE key.
func (c *Client) MakeCredential(ctx context.Context, req *ctap.MakeCredentialRequest) (*MakeCredentialResult, error) {
	body, err := c.callRaw(ctx, ctap.CmdMakeCredential, req)
	if err != nil {
		return nil, err
	}
	return decodeMakeCredential(req, body)
}

func decodeMakeCredential(req *ctap.MakeCredentialRequest, body []byte) (*MakeCredentialResult, error) {
	var (
		resp ctap.MakeCredentialResponse
		raw  rawMakeCredential
	)
	if err := ctap.DecMode().Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("%w: makeCredential: %v", ErrMalformedResponse, err)
	}
	if err := ctap.DecMode().Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: makeCredential: %v", ErrMalformedResponse, err)
	}
	if resp.Fmt == "" || len(raw.AttStmt) == 0 {
		return nil, fmt.Errorf("%w: makeCredential: fmt or attStmt missing", ErrMalformedResponse)
	}
	ad, err := ctap.ParseAuthData(resp.AuthData)
	if err != nil {
		return nil, fmt.Errorf("%w: makeCredential: %v", ErrMalformedResponse, err)
	}
	if ad.Attested == nil {
		return nil, fmt.Errorf("%w: makeCredential: authData has no attested credential data", ErrMalformedResponse)
	}
	if req.RP != nil && ad.RPIDHash != rpIDHash(req.RP.ID) {
		return nil, fmt.Errorf("%w: makeCredential: rpIdHash does not match rp.id %q", ErrMalformedResponse, req.RP.ID)
	}
	pk, err := cose.Unmarshal(ad.Attested.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: makeCredential: credential public key: %v", ErrMalformedResponse, err)
	}
	return &MakeCredentialResult{
		Response: &resp, AuthData: ad, CredentialID: ad.Attested.CredentialID, PublicKey: pk,
		RawAuthData: resp.AuthData, RawAttStmt: raw.AttStmt,
	}, nil
}

// AssertionResult is a decoded getAssertion or getNextAssertion answer.
type AssertionResult struct {
	Response *ctap.GetAssertionResponse
	AuthData *ctap.AuthData
	// CredentialID is the credential that signed: from the answer, or the single allowList entry
	// when the key left it out as CTAP allows.
	CredentialID []byte
	// User is the user entity of a discoverable credential, nil otherwise.
	User *ctap.UserEntity
	// NumberOfCredentials is the count the first answer reports (0 when not reported).
	NumberOfCredentials int
	Signature           []byte
	// RawAuthData is the authenticator data exactly as signed.
	RawAuthData []byte
	// ClientDataHash is what the signature covers together with RawAuthData.
	ClientDataHash []byte
}

// Verify checks the assertion signature with the credential's public key.
func (r *AssertionResult) Verify(pub cose.Key) error {
	msg := append(bytes.Clone(r.RawAuthData), r.ClientDataHash...)
	return pub.Verify(msg, r.Signature)
}

// GetAssertion asks for an assertion. The answer is checked for a parsable authData whose
// rpIdHash matches req.RPID and for a credential ID.
func (c *Client) GetAssertion(ctx context.Context, req *ctap.GetAssertionRequest) (*AssertionResult, error) {
	var resp ctap.GetAssertionResponse
	if err := c.call(ctx, ctap.CmdGetAssertion, req, &resp); err != nil {
		return nil, err
	}
	r, err := decodeAssertion(req, &resp)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.pending = req
	c.mu.Unlock()
	return r, nil
}

// GetNextAssertion returns the next credential's assertion after a GetAssertion that reported
// more than one.
func (c *Client) GetNextAssertion(ctx context.Context) (*AssertionResult, error) {
	var resp ctap.GetAssertionResponse
	if err := c.call(ctx, ctap.CmdGetNextAssertion, nil, &resp); err != nil {
		return nil, err
	}
	c.mu.Lock()
	req := c.pending
	c.mu.Unlock()
	if req == nil {
		req = &ctap.GetAssertionRequest{}
	}
	return decodeAssertion(req, &resp)
}

// Assertions runs getAssertion and then getNextAssertion for every further credential the key
// reports, in the key's order (newest first for discoverable credentials).
func (c *Client) Assertions(ctx context.Context, req *ctap.GetAssertionRequest) ([]*AssertionResult, error) {
	first, err := c.GetAssertion(ctx, req)
	if err != nil {
		return nil, err
	}
	out := []*AssertionResult{first}
	// numberOfCredentials is bounded by what fits the key's store; a lying key cannot make
	// the loop run past what the key itself answers.
	for i := 1; i < first.NumberOfCredentials; i++ {
		next, err := c.GetNextAssertion(ctx)
		if err != nil {
			return out, fmt.Errorf("client: getNextAssertion %d of %d: %w", i+1, first.NumberOfCredentials, err)
		}
		out = append(out, next)
	}
	return out, nil
}

func decodeAssertion(req *ctap.GetAssertionRequest, resp *ctap.GetAssertionResponse) (*AssertionResult, error) {
	ad, err := ctap.ParseAuthData(resp.AuthData)
	if err != nil {
		return nil, fmt.Errorf("%w: assertion: %v", ErrMalformedResponse, err)
	}
	if req.RPID != "" && ad.RPIDHash != rpIDHash(req.RPID) {
		return nil, fmt.Errorf("%w: assertion: rpIdHash does not match rpId %q", ErrMalformedResponse, req.RPID)
	}
	if len(resp.Signature) == 0 {
		return nil, fmt.Errorf("%w: assertion: no signature", ErrMalformedResponse)
	}
	r := &AssertionResult{
		Response: resp, AuthData: ad, User: resp.User, NumberOfCredentials: resp.NumberOfCredentials,
		Signature: resp.Signature, RawAuthData: resp.AuthData, ClientDataHash: req.ClientDataHash,
	}
	switch {
	case resp.Credential != nil && len(resp.Credential.ID) > 0:
		r.CredentialID = resp.Credential.ID
	case len(req.AllowList) == 1:
		r.CredentialID = req.AllowList[0].ID
	default:
		return nil, fmt.Errorf("%w: assertion: no credential ID", ErrMalformedResponse)
	}
	if len(req.AllowList) > 0 && !inList(req.AllowList, r.CredentialID) {
		return nil, fmt.Errorf("%w: assertion: credential is not in the allowList", ErrMalformedResponse)
	}
	return r, nil
}

func inList(list []ctap.CredentialDescriptor, id []byte) bool {
	for _, d := range list {
		if bytes.Equal(d.ID, id) {
			return true
		}
	}
	return false
}
