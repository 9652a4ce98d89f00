package rp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// LoginOptions are the choices a sign-in page and its platform make.
type LoginOptions struct {
	// UserVerification is the page's requirement; empty means "preferred".
	UserVerification protocol.UserVerificationRequirement
	// UV is how the platform verifies the user.
	UV UV
	// HMACSalt1 (and optionally HMACSalt2), 32 bytes each, ask for hmac-secret outputs, as
	// Windows does to unlock its cached sign-in secret.
	HMACSalt1, HMACSalt2 []byte
	// Pick chooses among the accounts a discoverable login returned (the key's order, newest
	// first); nil takes the first without asking for the others, as Windows' lock screen does.
	Pick func(accounts []*client.AssertionResult) int
	// U2F signs over CTAP1 (U2F_AUTHENTICATE), for credentials registered that way.
	U2F bool
}

// LoginResult is a verified sign-in.
type LoginResult struct {
	User       *User
	Credential *webauthn.Credential
	Flags      byte // authenticator data flags (ctap.FlagUP, ctap.FlagUV, …)
	SignCount  uint32
	// Accounts is how many credentials the key offered (numberOfCredentials, 1 if not reported).
	Accounts int
	// HMACSecret holds the hmac-secret outputs when salts were given.
	HMACSecret1, HMACSecret2 []byte
	// Assertion is the key's decoded answer that was verified.
	Assertion *client.AssertionResult
}

// PendingLogin is an authentication ceremony the RP has begun: the getAssertion request a browser
// builds from the RP's options (the RP's nonce is in its clientDataHash), still without the
// platform's user verification and extensions. A platform that runs the CTAP part itself (the
// Windows model) completes and sends Request, and hands the chosen answer to FinishLogin.
type PendingLogin struct {
	// Request is the getAssertion request; the platform adds pinUvAuthParam/options.uv and extensions.
	Request *ctap.GetAssertionRequest
	// ClientDataHash is what the request's pinUvAuthParam must cover.
	ClientDataHash []byte

	user    *User
	cdj     []byte
	session *webauthn.SessionData
}

// BeginLogin starts an authentication ceremony: for user (its credentials in allowCredentials), or
// with user nil a discoverable one; uv is the page's requirement ("" means "preferred").
func (r *RP) BeginLogin(user *User, uv protocol.UserVerificationRequirement) (*PendingLogin, error) {
	if uv == "" {
		uv = protocol.VerificationPreferred
	}
	var (
		assertion *protocol.CredentialAssertion
		session   *webauthn.SessionData
		err       error
	)
	if user != nil {
		assertion, session, err = r.wa.BeginLogin(user, webauthn.WithUserVerification(uv))
	} else {
		assertion, session, err = r.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(uv))
	}
	if err != nil {
		return nil, fmt.Errorf("rp: begin login: %w", describe(err))
	}
	cdj, err := r.clientDataJSON("webauthn.get", assertion.Response.Challenge)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256(cdj)
	req := &ctap.GetAssertionRequest{RPID: r.id, ClientDataHash: cdh[:]}
	for _, d := range assertion.Response.AllowedCredentials {
		req.AllowList = append(req.AllowList, ctap.CredentialDescriptor{ID: ctap.Bytes(d.CredentialID), Type: string(d.Type)})
	}
	return &PendingLogin{Request: req, ClientDataHash: cdh[:], user: user, cdj: cdj, session: session}, nil
}

// FinishLogin verifies the assertion the platform chose for a begun login: signature, flags,
// origin and challenge by go-webauthn, and a signature counter that must grow past the stored one
// (ErrCounterNotIncreased otherwise), which is then updated. Accounts and the hmac-secret outputs
// of the result are left for the platform, which alone knows them.
func (r *RP) FinishLogin(p *PendingLogin, chosen *client.AssertionResult) (*LoginResult, error) {
	if p == nil || chosen == nil || chosen.AuthData == nil {
		return nil, errors.New("rp: login: no pending login or no assertion")
	}
	res := &LoginResult{Accounts: 1, Assertion: chosen, Flags: chosen.AuthData.Flags, SignCount: chosen.AuthData.SignCount}
	var userHandle string
	if chosen.User != nil {
		userHandle = b64(chosen.User.ID)
	}
	body := map[string]any{
		"id": b64(chosen.CredentialID), "rawId": b64(chosen.CredentialID), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON": b64(p.cdj), "authenticatorData": b64(chosen.RawAuthData),
			"signature": b64(chosen.Signature), "userHandle": userHandle,
		},
		"clientExtensionResults": map[string]any{},
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("rp: login: %w", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("rp: login: parsing response: %w", describe(err))
	}
	user := p.user
	var cred *webauthn.Credential
	if user != nil {
		cred, err = r.wa.ValidateLogin(user, *p.session, parsed)
	} else {
		var u webauthn.User
		u, cred, err = r.wa.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
			if u := r.User(userHandle); u != nil {
				return u, nil
			}
			return nil, errors.New("no such user")
		}, *p.session, parsed)
		if err == nil {
			user = u.(*User)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("rp: login: verification: %w", describe(err))
	}
	if cred.Authenticator.CloneWarning {
		return nil, fmt.Errorf("%w: got %d", ErrCounterNotIncreased, chosen.AuthData.SignCount)
	}
	r.mu.Lock()
	for i := range user.Credentials {
		if bytes.Equal(user.Credentials[i].ID, cred.ID) {
			user.Credentials[i] = *cred
		}
	}
	r.mu.Unlock()
	res.User, res.Credential = user, cred
	return res, nil
}

// Login runs an authentication ceremony: for user (its credentials in allowCredentials), or with
// user nil a discoverable login that identifies the account from the key's user handle. The
// signature, flags, origin and challenge are verified by go-webauthn; the signature counter must
// grow past the stored one (ErrCounterNotIncreased otherwise), and the stored one is updated.
func (r *RP) Login(ctx context.Context, c *client.Client, user *User, opts LoginOptions) (*LoginResult, error) {
	p, err := r.BeginLogin(user, opts.UserVerification)
	if err != nil {
		return nil, err
	}
	req := p.Request
	uv := opts.UV
	if opts.U2F {
		uv = UV{}
	}
	tok, useUV, err := token(ctx, c, uv, ctap.PermGetAssertion, r.id)
	if err != nil {
		return nil, fmt.Errorf("rp: login: user verification: %w", err)
	}
	req.Options = uvOptions(req.Options, useUV)
	if tok != nil {
		req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(p.ClientDataHash), tok.ProtocolParam()
	}
	var hs *client.HMACSecret
	if opts.HMACSalt1 != nil {
		var in *ctap.HMACSecretInput
		if hs, in, err = c.NewHMACSecret(ctx, opts.HMACSalt1, opts.HMACSalt2); err != nil {
			return nil, fmt.Errorf("rp: login: hmac-secret: %w", err)
		}
		req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	}

	var (
		chosen   *client.AssertionResult
		accounts = 1
	)
	if opts.U2F {
		chosen, err = r.u2fGetAssertion(ctx, c, req)
	} else {
		chosen, accounts, err = r.getAssertion(ctx, c, req, user == nil && opts.Pick != nil, opts.Pick)
	}
	if err != nil {
		return nil, err
	}
	var h1, h2 []byte
	if hs != nil {
		if h1, h2, err = hs.Output(chosen.AuthData); err != nil {
			return nil, fmt.Errorf("rp: login: hmac-secret: %w", err)
		}
	}
	res, err := r.FinishLogin(p, chosen)
	if err != nil {
		return nil, err
	}
	res.Accounts, res.HMACSecret1, res.HMACSecret2 = accounts, h1, h2
	return res, nil
}

// getAssertion asks the key and returns the assertion to use and how many accounts it offered.
// With pick, every account is fetched (getNextAssertion) for the user to choose from.
func (r *RP) getAssertion(ctx context.Context, c *client.Client, req *ctap.GetAssertionRequest, all bool, pick func([]*client.AssertionResult) int) (*client.AssertionResult, int, error) {
	if !all {
		a, err := c.GetAssertion(ctx, req)
		if err != nil {
			return nil, 0, fmt.Errorf("rp: login: %w", err)
		}
		return a, max(a.NumberOfCredentials, 1), nil
	}
	list, err := c.Assertions(ctx, req)
	if err != nil {
		return nil, 0, fmt.Errorf("rp: login: %w", err)
	}
	i := pick(list)
	if i < 0 || i >= len(list) {
		return nil, 0, fmt.Errorf("rp: login: account %d picked of %d", i, len(list))
	}
	return list[i], len(list), nil
}
