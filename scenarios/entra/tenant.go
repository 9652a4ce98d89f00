// Package entra models the Microsoft Entra ID side of security-key sign-in: a tenant acting as the
// relying party login.microsoft.com, with its users, their registered FIDO2 credentials, the
// registration options Microsoft Graph publishes, attestation enforcement, AAGUID key restrictions
// and the nonces Windows gets signed. Verification is github.com/go-webauthn/webauthn through
// harness/rp; this package adds Entra's policy on top and answers in the scenario vocabulary.
package entra

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// RPID is Entra's WebAuthn relying party ID for FIDO2 security keys.
const RPID = "login.microsoft.com"

// Origin is the page origin the browser reports in clientDataJSON.
const Origin = "https://login.microsoft.com"

// CredProtectLevel is the CTAP credProtect level WebAuthn maps Graph's
// credentialProtectionPolicy "userVerificationOptional" to (CTAP 2.1 §12.1).
const CredProtectLevel = ctap.CredProtectUVOptional

// Algorithms are the COSE algorithms of Graph's creationOptions pubKeyCredParams: ES256 and RS256.
// A key that offers neither cannot be registered.
var Algorithms = []int64{-7, -257}

// CreationOptions are the registration options of Graph's fido2AuthenticationMethod
// creationOptions (microsoft-graph-docs-contrib, api-reference/beta/api/
// fido2authenticationmethod-creationoptions.md): resident key required, user verification
// required, direct attestation, hmacCreateSecret, credentialProtectionPolicy
// userVerificationOptional enforced. BeginRegistration narrows the algorithms to Algorithms.
func CreationOptions() rp.RegisterOptions {
	return rp.RegisterOptions{
		ResidentKey:        true,
		UserVerification:   protocol.VerificationRequired,
		Attestation:        protocol.PreferDirectAttestation,
		CredProtect:        CredProtectLevel,
		EnforceCredProtect: true,
		HMACSecret:         true,
	}
}

// Error is a refusal by Entra, with its scenario outcome code (host.Code…).
type Error struct {
	Code   string
	Reason string
	Err    error // underlying verification error, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("entra: %s: %s: %v", e.Code, e.Reason, e.Err)
	}
	return fmt.Sprintf("entra: %s: %s", e.Code, e.Reason)
}

// Unwrap exposes the verification error.
func (e *Error) Unwrap() error { return e.Err }

// Code returns the outcome code of an *Error in err's chain, or "" when there is none.
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// Policy is the tenant's passkey (FIDO2) policy.
type Policy struct {
	// EnforceAttestation requires packed attestation chaining to a trusted root, at registration only.
	EnforceAttestation bool
	// AAGUIDAllow, when not empty, admits only these AAGUIDs; AAGUIDBlock refuses these. Both
	// apply at registration and at sign-in.
	AAGUIDAllow, AAGUIDBlock []string
	// CounterMustIncrease refuses an assertion whose signature counter is not above the stored
	// one. No Microsoft source says Entra does this (WebAuthn §6.1.1 leaves it to the relying
	// party), so it is off unless a case turns it on: inferred.
	CounterMustIncrease bool
}

// Credential is one registered security key of a user.
type Credential struct {
	ID        []byte
	UPN       string
	AAGUID    [16]byte
	PublicKey []byte // COSE key
	Counter   uint32
	Removed   bool
}

// Option configures a Tenant.
type Option func(*Tenant)

// WithTrustedRoots adds attestation roots (the FIDO MDS roots in real Entra; the emulator
// persona's test CA, key.Auth.AttestationRoot(), for in-process keys).
func WithTrustedRoots(roots ...*x509.Certificate) Option {
	return func(t *Tenant) {
		for _, r := range roots {
			if r != nil {
				t.roots = append(t.roots, r)
			}
		}
	}
}

// Tenant is one Entra tenant.
type Tenant struct {
	rp    *rp.RP
	roots []*x509.Certificate

	mu      sync.Mutex
	policy  Policy
	users   map[string]*rp.User       // by UPN
	creds   map[string]*Credential    // by hex credential ID
	pending map[*rp.PendingLogin]bool // issued nonces not yet redeemed
	regs    map[*rp.PendingRegistration]string
}

// New returns a tenant with policy p.
func New(p Policy, opts ...Option) (*Tenant, error) {
	t := &Tenant{users: map[string]*rp.User{}, creds: map[string]*Credential{}, pending: map[*rp.PendingLogin]bool{}, regs: map[*rp.PendingRegistration]string{}}
	for _, o := range opts {
		o(t)
	}
	if err := t.SetPolicy(p); err != nil {
		return nil, err
	}
	return t, nil
}

// SetPolicy replaces the tenant's passkey policy (attestation enforcement, AAGUID allow and block
// lists), keeping its users and their registered credentials: an admin changing the policy.
func (t *Tenant) SetPolicy(p Policy) error {
	t.mu.Lock()
	if t.rp == nil {
		r, err := rp.New(RPID, Origin, rp.WithName("Microsoft"))
		if err != nil {
			t.mu.Unlock()
			return err
		}
		t.rp = r
	}
	// harness/rp checks chains whenever it has roots; without enforcement Entra stores a key
	// whatever its attestation, so the roots are given only when enforcing.
	if p.EnforceAttestation {
		t.rp.SetAttestationRoots(t.roots...)
	} else {
		t.rp.SetAttestationRoots()
	}
	t.policy = Policy{EnforceAttestation: p.EnforceAttestation, CounterMustIncrease: p.CounterMustIncrease}
	t.mu.Unlock()
	for _, a := range p.AAGUIDAllow {
		t.Allow(a)
	}
	for _, a := range p.AAGUIDBlock {
		t.Block(a)
	}
	return nil
}

// normAAGUID lowercases and strips dashes so that any UUID spelling compares equal.
func normAAGUID(s string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), "-", ""))
}

// Block adds an AAGUID to the key restriction block list.
func (t *Tenant) Block(aaguid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a := normAAGUID(aaguid); !slices.Contains(t.policy.AAGUIDBlock, a) {
		t.policy.AAGUIDBlock = append(t.policy.AAGUIDBlock, a)
	}
}

// Allow adds an AAGUID to the allow list and lifts any block on it.
func (t *Tenant) Allow(aaguid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := normAAGUID(aaguid)
	if !slices.Contains(t.policy.AAGUIDAllow, a) {
		t.policy.AAGUIDAllow = append(t.policy.AAGUIDAllow, a)
	}
	t.policy.AAGUIDBlock = slices.DeleteFunc(t.policy.AAGUIDBlock, func(b string) bool { return b == a })
}

// aaguidRefused says why an AAGUID is refused by the key restriction policy, "" when admitted.
func (t *Tenant) aaguidRefused(aaguid [16]byte) string {
	a := hex.EncodeToString(aaguid[:])
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Contains(t.policy.AAGUIDBlock, a) {
		return "AAGUID " + a + " is on the tenant's block list"
	}
	if len(t.policy.AAGUIDAllow) > 0 && !slices.Contains(t.policy.AAGUIDAllow, a) {
		return "AAGUID " + a + " is not on the tenant's allow list"
	}
	return ""
}

// UserHandle is the WebAuthn user handle Entra uses for upn: stable, so traces of the same case
// are comparable, and opaque as WebAuthn asks.
func UserHandle(upn string) []byte {
	h := sha256.Sum256([]byte("entra user handle\x00" + strings.ToLower(upn)))
	return h[:16]
}

// user returns (creating) the account upn.
func (t *Tenant) user(upn string) *rp.User {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.users[upn]; ok {
		return u
	}
	u := &rp.User{ID: UserHandle(upn), Name: upn, DisplayName: upn}
	t.users[upn] = u
	return u
}

// AccountByHandle returns the UPN of a user handle, "" if the tenant has no such user.
func (t *Tenant) AccountByHandle(handle []byte) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for upn, u := range t.users {
		if bytes.Equal(u.ID, handle) {
			return upn
		}
	}
	return ""
}

// Credentials lists upn's credentials, removed ones included.
func (t *Tenant) Credentials(upn string) []Credential {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Credential
	for _, c := range t.creds {
		if c.UPN == upn {
			out = append(out, *c)
		}
	}
	slices.SortFunc(out, func(a, b Credential) int { return bytes.Compare(a.ID, b.ID) })
	return out
}

// RemoveCredential deletes a credential from upn's Security info; later sign-ins with it fail
// with credential-revoked. It reports whether such a credential was registered.
func (t *Tenant) RemoveCredential(upn string, id []byte) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.creds[hex.EncodeToString(id)]
	if !ok || c.UPN != upn {
		return false
	}
	c.Removed = true
	if u := t.users[upn]; u != nil {
		u.Credentials = slices.DeleteFunc(u.Credentials, func(w webauthn.Credential) bool { return bytes.Equal(w.ID, id) })
	}
	return true
}

// BeginRegistration starts registering a security key for upn ("Security info" › Add sign-in
// method › Security key): the makeCredential request built from Graph's creation options.
func (t *Tenant) BeginRegistration(upn string) (*rp.PendingRegistration, error) {
	if upn == "" {
		return nil, errors.New("entra: register: account required")
	}
	p, err := t.rp.BeginRegister(t.user(upn), CreationOptions())
	if err != nil {
		return nil, err
	}
	p.Request.PubKeyCredParams = nil
	for _, alg := range Algorithms {
		p.Request.PubKeyCredParams = append(p.Request.PubKeyCredParams, ctap.CredentialParam{Type: ctap.CredentialTypePublicKey, Alg: &alg})
	}
	t.mu.Lock()
	t.regs[p] = upn
	t.mu.Unlock()
	return p, nil
}

// FinishRegistration applies Entra's checks to the key's answer and stores the credential:
// key restrictions, attestation enforcement, user verification, hmac-secret, then WebAuthn
// verification.
func (t *Tenant) FinishRegistration(p *rp.PendingRegistration, res *client.MakeCredentialResult) (*Credential, error) {
	if res == nil || res.AuthData == nil || res.AuthData.Attested == nil || res.Response == nil {
		return nil, &Error{Code: host.CodeKeyError, Reason: "makeCredential answer without attested credential data"}
	}
	t.mu.Lock()
	upn, ok := t.regs[p]
	delete(t.regs, p)
	t.mu.Unlock()
	if !ok {
		return nil, &Error{Code: host.CodeKeyError, Reason: "no registration in progress for this answer"}
	}
	aaguid := res.AuthData.Attested.AAGUID
	if why := t.aaguidRefused(aaguid); why != "" {
		return nil, &Error{Code: host.CodeAAGUIDBlocked, Reason: why + " (key restriction at registration)"}
	}
	if res.AuthData.Flags&ctap.FlagUV == 0 {
		return nil, &Error{Code: host.CodeNoUserVerification, Reason: "authenticator data without the UV flag; Entra requires user verification"}
	}
	if !hmacSecretCreated(res.AuthData) {
		return nil, &Error{Code: host.CodeNoHMACSecret, Reason: "the key did not confirm hmac-secret at makeCredential"}
	}
	if t.policy.EnforceAttestation {
		if res.Response.Fmt != ctap.FormatPacked || len(res.Response.AttStmt.X5C) == 0 {
			return nil, &Error{Code: host.CodeAttestationRejected, Reason: fmt.Sprintf("attestation enforced: format %q without a certificate chain", res.Response.Fmt)}
		}
		if len(t.roots) == 0 {
			return nil, &Error{Code: host.CodeAttestationRejected, Reason: "attestation enforced and the tenant trusts no root"}
		}
	}
	reg, err := t.rp.FinishRegister(p, res)
	if errors.Is(err, rp.ErrUntrustedAttestation) {
		return nil, &Error{Code: host.CodeAttestationRejected, Reason: "attestation chain does not reach a trusted root", Err: err}
	}
	if err != nil {
		return nil, &Error{Code: host.CodeKeyError, Reason: "registration verification failed", Err: err}
	}
	c := &Credential{ID: bytes.Clone(reg.Credential.ID), UPN: upn, AAGUID: aaguid,
		PublicKey: bytes.Clone(reg.Credential.PublicKey), Counter: reg.Credential.Authenticator.SignCount}
	t.mu.Lock()
	t.creds[hex.EncodeToString(c.ID)] = c
	t.mu.Unlock()
	return c, nil
}

// hmacSecretCreated reports whether authData's extension outputs carry hmac-secret: true.
func hmacSecretCreated(ad *ctap.AuthData) bool {
	if len(ad.Extensions) == 0 {
		return false
	}
	var ext map[string]any
	if ctap.DecMode().Unmarshal(ad.Extensions, &ext) != nil {
		return false
	}
	v, _ := ext["hmac-secret"].(bool)
	return v
}
