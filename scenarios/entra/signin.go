package entra

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/go-webauthn/webauthn/protocol"
)

// Nonce is a sign-in challenge Entra issued (Windows fetches one before asking the key to sign,
// concept-authentication-passkeys-fido2.md). It is redeemed once.
type Nonce struct {
	p *rp.PendingLogin
}

// Request is the discoverable getAssertion request for the nonce (no allowList); the platform
// adds user verification and extensions.
func (n *Nonce) Request() *ctap.GetAssertionRequest { return n.p.Request }

// ClientDataHash is what the platform's pinUvAuthParam covers.
func (n *Nonce) ClientDataHash() []byte { return n.p.ClientDataHash }

// IssueNonce starts a sign-in: a fresh challenge for a discoverable, UV-required assertion.
func (t *Tenant) IssueNonce() (*Nonce, error) {
	p, err := t.rp.BeginLogin(nil, protocol.VerificationRequired)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.pending[p] = true
	t.mu.Unlock()
	return &Nonce{p: p}, nil
}

// SignIn is a sign-in Entra accepted.
type SignIn struct {
	UPN        string
	Credential Credential
}

// Redeem verifies the assertion the platform chose for nonce n: the nonce is unused, the
// credential is registered and not removed, its AAGUID is still admitted, UV was performed, and
// the signature and counter verify.
func (t *Tenant) Redeem(n *Nonce, a *client.AssertionResult) (*SignIn, error) {
	if n == nil || a == nil || a.AuthData == nil {
		return nil, errors.New("entra: redeem: no nonce or no assertion")
	}
	t.mu.Lock()
	fresh := t.pending[n.p]
	delete(t.pending, n.p)
	c, known := t.creds[hex.EncodeToString(a.CredentialID)]
	var cc Credential
	if known {
		cc = *c
	}
	t.mu.Unlock()
	switch {
	case !fresh:
		return nil, &Error{Code: host.CodeKeyError, Reason: "nonce already used or never issued"}
	case !known:
		return nil, &Error{Code: host.CodeKeyError, Reason: "credential not registered in this tenant"}
	case cc.Removed:
		return nil, &Error{Code: host.CodeCredentialRevoked, Reason: "the key was removed from " + cc.UPN + "'s Security info"}
	}
	if a.User != nil && subtle.ConstantTimeCompare(a.User.ID, UserHandle(cc.UPN)) != 1 {
		return nil, &Error{Code: host.CodeKeyError, Reason: "user handle does not match the credential's account"}
	}
	if why := t.aaguidRefused(cc.AAGUID); why != "" {
		return nil, &Error{Code: host.CodeAAGUIDBlocked, Reason: why + " (key restriction at sign-in)"}
	}
	if a.AuthData.Flags&ctap.FlagUV == 0 {
		return nil, &Error{Code: host.CodeNoUserVerification, Reason: "assertion without the UV flag"}
	}
	t.mu.Lock()
	strict := t.policy.CounterMustIncrease
	t.mu.Unlock()
	// harness/rp reports a counter that did not increase only after the signature verified.
	_, err := t.rp.FinishLogin(n.p, a)
	switch {
	case errors.Is(err, rp.ErrCounterNotIncreased) && strict:
		return nil, &Error{Code: host.CodeKeyError, Reason: "signature counter did not increase (tenant setting counterMustIncrease)", Err: err}
	case errors.Is(err, rp.ErrCounterNotIncreased):
	case err != nil:
		return nil, &Error{Code: host.CodeKeyError, Reason: "assertion verification failed", Err: err}
	}
	t.mu.Lock()
	if c := t.creds[hex.EncodeToString(a.CredentialID)]; c != nil {
		c.Counter = max(c.Counter, a.AuthData.SignCount)
		cc = *c
	}
	t.mu.Unlock()
	return &SignIn{UPN: cc.UPN, Credential: cc}, nil
}
