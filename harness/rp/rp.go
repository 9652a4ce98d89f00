// Package rp is the relying-party side of the harness: it plays the browser (clientDataJSON, the
// WebAuthn JSON a page posts back) and the server (github.com/go-webauthn/webauthn verification,
// attestation trust, signature counters) around a host client talking to a key, so a test can
// say "register alice, then log in" and get the verdict a real website would reach.
package rp

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// ErrCounterNotIncreased reports an assertion whose signature counter did not grow past the one
// stored for the credential (a sign of a cloned key, or of a key that lost its counter).
var ErrCounterNotIncreased = errors.New("rp: signature counter did not increase")

// ErrUntrustedAttestation reports an attestation certificate chain that does not lead to any of
// the RP's trusted roots.
var ErrUntrustedAttestation = errors.New("rp: attestation does not chain to a trusted root")

// User is an account at the relying party with its registered credentials.
type User struct {
	ID          []byte
	Name        string
	DisplayName string
	Credentials []webauthn.Credential
}

// WebAuthnID implements webauthn.User.
func (u *User) WebAuthnID() []byte { return u.ID }

// WebAuthnName implements webauthn.User.
func (u *User) WebAuthnName() string { return u.Name }

// WebAuthnDisplayName implements webauthn.User.
func (u *User) WebAuthnDisplayName() string { return u.DisplayName }

// WebAuthnCredentials implements webauthn.User.
func (u *User) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

// UV says how the platform verifies the user: with a PIN (sent to the key for a pinUvAuthToken),
// with the key's built-in UV, or not at all (the zero value: presence only). It never prints the PIN.
type UV struct {
	PIN     string
	BuiltIn bool
}

// String redacts the PIN.
func (u UV) String() string {
	switch {
	case u.PIN != "":
		return "UV(PIN <redacted>)"
	case u.BuiltIn:
		return "UV(built-in)"
	}
	return "UV(none)"
}

// GoString redacts the PIN under %#v.
func (u UV) GoString() string { return u.String() }

// Format redacts the PIN under every verb.
func (u UV) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(u.String())) }

// Option configures an RP.
type Option func(*RP)

// WithName sets the RP's display name (default: the RP ID).
func WithName(name string) Option { return func(r *RP) { r.name = name } }

// WithAttestationRoots makes the RP verify every x5c attestation chain up to one of roots; a chain
// that does not verify fails the registration with ErrUntrustedAttestation. Without roots, chains
// are accepted as go-webauthn verifies them (signature and certificate requirements only).
func WithAttestationRoots(roots ...*x509.Certificate) Option {
	return func(r *RP) {
		if r.roots == nil {
			r.roots = x509.NewCertPool()
		}
		for _, c := range roots {
			if c != nil {
				r.roots.AddCert(c)
			}
		}
	}
}

// WithFiltering applies go-webauthn's AAGUID allow/deny lists at registration.
func WithFiltering(f *webauthn.FilteringConfig) Option { return func(r *RP) { r.filtering = f } }

// RP is one relying party: its WebAuthn configuration and its users.
type RP struct {
	id, origin, name string
	roots            *x509.CertPool
	filtering        *webauthn.FilteringConfig
	wa               *webauthn.WebAuthn

	mu    sync.Mutex
	users map[string]*User // by string(user ID)
}

// New returns an RP for rpID whose pages are served from origin (e.g. "https://example.com").
func New(rpID, origin string, opts ...Option) (*RP, error) {
	r := &RP{id: rpID, origin: origin, name: rpID, users: map[string]*User{}}
	for _, o := range opts {
		o(r)
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: rpID, RPDisplayName: r.name, RPOrigins: []string{origin}, Filtering: r.filtering,
	})
	if err != nil {
		return nil, fmt.Errorf("rp: %w", err)
	}
	r.wa = wa
	return r, nil
}

// ID returns the RP ID.
func (r *RP) ID() string { return r.id }

// User returns the account with the given ID, or nil.
func (r *RP) User(id []byte) *User {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.users[string(id)]
}

// SetAttestationRoots replaces the trusted attestation roots (none: chains are not checked),
// keeping the users: an admin turning attestation enforcement on or off.
func (r *RP) SetAttestationRoots(roots ...*x509.Certificate) {
	var pool *x509.CertPool
	for _, c := range roots {
		if c != nil {
			if pool == nil {
				pool = x509.NewCertPool()
			}
			pool.AddCert(c)
		}
	}
	r.mu.Lock()
	r.roots = pool
	r.mu.Unlock()
}

func (r *RP) attestationRoots() *x509.CertPool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.roots
}

func (r *RP) addUser(u *User) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.users[string(u.ID)] = u
}

// collectedClientData is the browser's CollectedClientData (WebAuthn §5.8.1).
type collectedClientData struct {
	Type        string `json:"type"`
	Challenge   string `json:"challenge"`
	Origin      string `json:"origin"`
	CrossOrigin bool   `json:"crossOrigin"`
}

func (r *RP) clientDataJSON(typ string, challenge protocol.URLEncodedBase64) ([]byte, error) {
	if _, err := url.Parse(r.origin); err != nil {
		return nil, fmt.Errorf("rp: origin: %w", err)
	}
	return json.Marshal(collectedClientData{Type: typ, Challenge: challenge.String(), Origin: r.origin})
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// token obtains a pinUvAuthToken for perms when uv asks for one. It returns nil for no UV, and
// for built-in UV on a CTAP 2.0 key, which takes the "uv" option instead (useUVOption).
func token(ctx context.Context, c *client.Client, uv UV, perms uint64, rpID string) (tok *client.Token, useUVOption bool, err error) {
	switch {
	case uv.PIN != "":
		tok, err = c.GetPINToken(ctx, uv.PIN, perms, rpID)
		return tok, false, err
	case uv.BuiltIn:
		info, err := c.Info(ctx)
		if err != nil {
			return nil, false, err
		}
		if v, _ := info.Option("pinUvAuthToken"); !v {
			return nil, true, nil
		}
		tok, err = c.GetUVToken(ctx, perms, rpID)
		return tok, false, err
	}
	return nil, false, nil
}

// uvOptions sets options.uv for CTAP 2.0 built-in UV; nil options mean "defaults" to the key.
func uvOptions(o *ctap.Options, useUV bool) *ctap.Options {
	if useUV {
		if o == nil {
			o = &ctap.Options{}
		}
		o.UV = ctap.Bool(true)
	}
	return o
}
