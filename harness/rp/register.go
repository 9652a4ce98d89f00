package rp

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// RegisterOptions are the choices a registration page makes.
type RegisterOptions struct {
	// ResidentKey asks for a discoverable credential ("required").
	ResidentKey bool
	// UserVerification is the page's requirement; empty means "preferred".
	UserVerification protocol.UserVerificationRequirement
	// Attestation is the conveyance preference; empty means "none".
	Attestation protocol.ConveyancePreference
	// CredProtect requests a credProtect level (1–3, 0 for none); EnforceCredProtect makes a key
	// that does not apply at least that level fail the registration.
	CredProtect        uint64
	EnforceCredProtect bool
	// HMACSecret requests hmac-secret (WebAuthn's hmacCreateSecret).
	HMACSecret bool
	// Exclude lists the user's existing credentials in excludeCredentials, as sites do.
	Exclude bool
	// UV is how the platform verifies the user.
	UV UV
	// U2F registers over CTAP1 (U2F_REGISTER, fido-u2f attestation), as browsers do for keys
	// without CTAP2; extensions, resident keys and UV do not apply.
	U2F bool
}

var credProtectPolicies = map[uint64]protocol.CredentialProtectionPolicy{
	ctap.CredProtectUVOptional:             protocol.CredentialProtectionPolicyUserVerificationOptional,
	ctap.CredProtectUVOptionalWithCredList: protocol.CredentialProtectionPolicyUserVerificationOptionalWithCredentialIDList,
	ctap.CredProtectUVRequired:             protocol.CredentialProtectionPolicyUserVerificationRequired,
}

// Registration is what a registration produced, beside the stored credential.
type Registration struct {
	Credential *webauthn.Credential
	// Result is the key's decoded makeCredential answer.
	Result *client.MakeCredentialResult
	// Chain is the verified attestation chain, leaf first, when the RP has trusted roots and the
	// attestation carried x5c.
	Chain []*x509.Certificate
}

// PendingRegistration is a registration ceremony the RP has begun: the makeCredential request a
// browser builds from the RP's options, still without the platform's pinUvAuthParam, waiting for
// the key's answer. A platform that runs the CTAP part itself (the Windows model) fills in user
// verification, sends Request and hands the answer to FinishRegister.
type PendingRegistration struct {
	// Request is the makeCredential request; the platform adds PinUvAuthParam/Protocol or options.uv.
	Request *ctap.MakeCredentialRequest
	// ClientDataHash is what the request's pinUvAuthParam must cover.
	ClientDataHash []byte

	user        *User
	opts        RegisterOptions
	attestation protocol.ConveyancePreference
	cdj         []byte
	session     *webauthn.SessionData
}

// BeginRegister starts a registration ceremony for user: the RP's creation options, the browser's
// clientDataJSON and the makeCredential request built from them.
func (r *RP) BeginRegister(user *User, opts RegisterOptions) (*PendingRegistration, error) {
	if user == nil || len(user.ID) == 0 {
		return nil, errors.New("rp: register: user with an ID required")
	}
	uvReq := opts.UserVerification
	if uvReq == "" {
		uvReq = protocol.VerificationPreferred
	}
	att := opts.Attestation
	if att == "" {
		att = protocol.PreferNoAttestation
	}
	sel := protocol.AuthenticatorSelection{
		AuthenticatorAttachment: protocol.CrossPlatform, UserVerification: uvReq,
		ResidentKey: protocol.ResidentKeyRequirementDiscouraged, RequireResidentKey: protocol.ResidentKeyNotRequired(),
	}
	if opts.ResidentKey {
		sel.ResidentKey, sel.RequireResidentKey = protocol.ResidentKeyRequirementRequired, protocol.ResidentKeyRequired()
	}
	var exts []webauthn.ExtensionOption
	if p, ok := credProtectPolicies[opts.CredProtect]; ok {
		// Enforcing userVerificationOptional is trivially met by any key (it is every credential's
		// default protection), so a browser does not fail a key that ignores credProtect then;
		// only levels 2 and 3 are enforced against the key's answer.
		enforce := opts.EnforceCredProtect && opts.CredProtect > ctap.CredProtectUVOptional
		exts = append(exts, webauthn.WithExtensionCredentialProtectionPolicy(p, enforce))
	} else if opts.CredProtect != 0 {
		return nil, fmt.Errorf("rp: register: credProtect level %d", opts.CredProtect)
	}
	if opts.HMACSecret {
		exts = append(exts, webauthn.WithExtensionHMACCreateSecret())
	}
	regOpts := []webauthn.RegistrationOption{webauthn.WithAuthenticatorSelection(sel), webauthn.WithConveyancePreference(att)}
	if len(exts) > 0 {
		regOpts = append(regOpts, webauthn.WithExtensions(exts...))
	}
	if opts.Exclude && len(user.Credentials) > 0 {
		regOpts = append(regOpts, webauthn.WithExclusions(webauthn.Credentials(user.Credentials).CredentialDescriptors()))
	}
	creation, session, err := r.wa.BeginRegistration(user, regOpts...)
	if err != nil {
		return nil, fmt.Errorf("rp: begin registration: %w", err)
	}
	pk := creation.Response
	cdj, err := r.clientDataJSON("webauthn.create", pk.Challenge)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256(cdj)

	req := &ctap.MakeCredentialRequest{
		ClientDataHash: cdh[:],
		RP:             &ctap.RPEntity{ID: r.id, Name: pk.RelyingParty.Name},
		User:           &ctap.UserEntity{ID: user.ID, Name: user.Name, DisplayName: user.DisplayName},
	}
	for _, p := range pk.Parameters {
		alg := int64(p.Algorithm)
		req.PubKeyCredParams = append(req.PubKeyCredParams, ctap.CredentialParam{Alg: &alg, Type: string(p.Type)})
	}
	for _, d := range pk.CredentialExcludeList {
		req.ExcludeList = append(req.ExcludeList, ctap.CredentialDescriptor{ID: ctap.Bytes(d.CredentialID), Type: string(d.Type)})
	}
	if opts.ResidentKey {
		req.Options = &ctap.Options{RK: ctap.Bool(true)}
	}
	if opts.CredProtect != 0 || opts.HMACSecret {
		req.Extensions = &ctap.MakeCredentialExtensions{}
		if opts.CredProtect != 0 {
			req.Extensions.CredProtect = ctap.Uint(opts.CredProtect)
		}
		if opts.HMACSecret {
			req.Extensions.HMACSecret = ctap.Bool(true)
		}
	}
	return &PendingRegistration{Request: req, ClientDataHash: cdh[:], user: user, opts: opts, attestation: att, cdj: cdj, session: session}, nil
}

// FinishRegister verifies the key's makeCredential answer to a begun registration: go-webauthn's
// verification and, with trusted roots, the attestation chain. On success the credential is added
// to the user, and the user to the RP.
func (r *RP) FinishRegister(p *PendingRegistration, res *client.MakeCredentialResult) (*Registration, error) {
	if p == nil || res == nil || res.Response == nil || res.AuthData == nil {
		return nil, errors.New("rp: register: no pending registration or no answer")
	}
	if p.attestation == protocol.PreferNoAttestation && res.Response.Fmt != ctap.FormatNone {
		// A browser asked for no attestation replaces the statement with "none" (WebAuthn §5.4.7).
		res.RawAttStmt = []byte{0xa0}
		res.Response.Fmt = ctap.FormatNone
		res.Response.AttStmt = ctap.AttStmt{}
	}
	attObj, err := res.AttestationObject()
	if err != nil {
		return nil, fmt.Errorf("rp: register: %w", err)
	}
	body := map[string]any{
		"id": b64(res.CredentialID), "rawId": b64(res.CredentialID), "type": "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON": b64(p.cdj), "attestationObject": b64(attObj), "transports": []string{"usb"},
		},
		"clientExtensionResults": registrationClientOutputs(p.opts, res),
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("rp: register: %w", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("rp: register: parsing response: %w", describe(err))
	}
	cred, err := r.wa.CreateCredential(p.user, *p.session, parsed)
	if err != nil {
		return nil, fmt.Errorf("rp: register: verification: %w", describe(err))
	}
	reg := &Registration{Credential: cred, Result: res}
	if roots := r.attestationRoots(); roots != nil && len(res.Response.AttStmt.X5C) > 0 {
		if reg.Chain, err = r.verifyChain(roots, res.Response.AttStmt.X5C); err != nil {
			return nil, err
		}
	}
	p.user.Credentials = append(p.user.Credentials, *cred)
	r.addUser(p.user)
	return reg, nil
}

// Register runs a registration ceremony for user with the key behind c: the RP's options, the
// browser's clientDataJSON and makeCredential, then go-webauthn's verification and, with trusted
// roots, the attestation chain. On success the credential is added to user, and user to the RP.
func (r *RP) Register(ctx context.Context, c *client.Client, user *User, opts RegisterOptions) (*Registration, error) {
	p, err := r.BeginRegister(user, opts)
	if err != nil {
		return nil, err
	}
	var res *client.MakeCredentialResult
	if opts.U2F {
		res, err = r.u2fMakeCredential(ctx, c, [32]byte(p.ClientDataHash))
	} else {
		req := p.Request
		tok, useUV, terr := token(ctx, c, opts.UV, ctap.PermMakeCredential, r.id)
		if terr != nil {
			return nil, fmt.Errorf("rp: register: user verification: %w", terr)
		}
		req.Options = uvOptions(req.Options, useUV)
		if tok != nil {
			req.PinUvAuthParam, req.PinUvAuthProtocol = tok.Auth(p.ClientDataHash), tok.ProtocolParam()
		}
		res, err = c.MakeCredential(ctx, req)
	}
	if err != nil {
		return nil, fmt.Errorf("rp: register: %w", err)
	}
	return r.FinishRegister(p, res)
}

// registrationClientOutputs are the client extension outputs a browser reports, only for what
// was requested (go-webauthn rejects unsolicited ones).
func registrationClientOutputs(opts RegisterOptions, res *client.MakeCredentialResult) map[string]any {
	out := map[string]any{}
	if opts.HMACSecret {
		created := false
		if len(res.AuthData.Extensions) > 0 {
			var ext map[string]any
			if ctap.DecMode().Unmarshal(res.AuthData.Extensions, &ext) == nil {
				created, _ = ext["hmac-secret"].(bool)
			}
		}
		out["hmacCreateSecret"] = created
	}
	return out
}

func (r *RP) verifyChain(roots *x509.CertPool, x5c [][]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, 0, len(x5c))
	for i, der := range x5c {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate %d: %v", ErrUntrustedAttestation, i, err)
		}
		certs = append(certs, cert)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := certs[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: time.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUntrustedAttestation, err)
	}
	return chains[0], nil
}

// describe adds go-webauthn's developer detail to its errors, which otherwise print only a type.
func describe(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && (pe.Details != "" || pe.DevInfo != "") {
		return fmt.Errorf("%w (%s; %s)", err, pe.Details, pe.DevInfo)
	}
	return err
}
