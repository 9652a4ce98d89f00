package runner

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
)

// keyTraits is the behaviour of a key that its getInfo does not show, found by probing a fresh
// key of the kind under test with plain CTAP (not through a Windows host). A zero value means
// conforming, or not probed.
type keyTraits struct {
	oldestFirst bool // discoverable credentials come oldest first
	otherRPs    bool // getAssertion without allowList returns other relying parties' credentials
	hmacPerBoot bool // the hmac-secret output changes across a power cycle
	reset       string
}

// The probes' relying parties: reserved names (RFC 2606) no case uses.
const (
	probeRP      = "probe.fidolab.test"
	probeOtherRP = "elsewhere.fidolab.test"
)

// dependsOn says which traits a case's outcome can depend on, from its shape: the order of
// several accounts at a logon, the hmac-secret output across a replug, other sites' credentials,
// the reset window.
type dependsOn struct{ order, replug, otherSite, reset bool }

func (d dependsOn) any() bool { return d.order || d.replug || d.otherSite || d.reset }

func shapeOf(c catalog.Case) dependsOn {
	accounts := len(c.Key.Accounts)
	var d dependsOn
	logon := false
	for _, st := range c.Steps {
		switch st.Action.Name {
		case host.ActRegister, host.ActRegisterOtherTenant:
			accounts++
		case host.ActLockScreenSignIn, host.ActUnlock:
			logon = true
		case host.ActReplug:
			d.replug = true
		case host.ActResetKey:
			d.reset = true
		case host.ActRegisterOtherSite:
			d.otherSite = true
		}
	}
	d.order = accounts >= 2 && logon
	return d
}

// relevant lists the traits case c depends on, as causes.
func (t keyTraits) relevant(c catalog.Case) []string {
	d := shapeOf(c)
	var out []string
	if t.oldestFirst && d.order {
		out = append(out, "credential ordering: the key returns discoverable credentials oldest first, and Windows takes the first and never asks for the next, so it signs in as the first account added instead of the last")
	}
	if t.hmacPerBoot && d.replug {
		out = append(out, "hmac-secret output changes after a power cycle (CredRandom not persisted): the secret Windows cached online no longer opens its offline cache once the key was replugged")
	}
	if t.otherRPs && d.otherSite {
		out = append(out, "getAssertion without allowList returns other sites' discoverable credentials: Windows takes a credential Entra never registered")
	}
	if t.reset != "" && d.reset {
		out = append(out, t.reset)
	}
	return out
}

// probeKey finds the traits of key, a fresh key the probes may change (set a PIN, make
// credentials, reset). A probe that cannot run (no resident keys, no PIN, a key that cannot be
// replugged or has no clock of its own) leaves its trait unknown.
func probeKey(ctx context.Context, key Key) keyTraits {
	var t keyTraits
	c, err := key.Client(ctx, host.ClientOptions{})
	if err != nil {
		return t
	}
	info, err := c.GetInfo(ctx)
	if err != nil || !info.Options["rk"] {
		return t
	}
	pin := strings.Repeat("2468", 16)[:max(8, int(info.MinPINLength))]
	if set, has := info.Options["clientPin"]; !has {
		return t
	} else if !set {
		if c.SetPIN(ctx, pin) != nil {
			return t
		}
	}
	p := &prober{c: c, pin: pin, hmac: info.HasExtension("hmac-secret")}
	if _, err := p.make(ctx, probeRP, "older"); err != nil {
		return t
	}
	newer, err := p.make(ctx, probeRP, "newer")
	if err != nil {
		return t
	}
	if first, err := p.assert(ctx, probeRP, nil, nil); err == nil && first.User != nil {
		t.oldestFirst = bytes.Equal(first.User.ID, []byte("older"))
	}
	_, err = p.assert(ctx, probeOtherRP, nil, nil)
	t.otherRPs = err == nil

	if p.hmac {
		salt := make([]byte, 32)
		_, _ = rand.Read(salt)
		before, err := p.hmacOutput(ctx, newer, salt)
		if err == nil && key.Replug(ctx) == nil {
			if c, err = key.Client(ctx, host.ClientOptions{}); err == nil {
				p.c = c
				after, err := p.hmacOutput(ctx, newer, salt)
				t.hmacPerBoot = err == nil && !bytes.Equal(before, after)
			}
		}
	}
	t.reset = probeReset(ctx, key)
	return t
}

// probeReset checks the reset window on a key whose clock the runner can move: CTAP 2.1 §6.6 lets
// authenticatorReset succeed within 10 s of power-up and not after.
func probeReset(ctx context.Context, key Key) string {
	clk, ok := key.(host.Clock)
	if !ok {
		return ""
	}
	try := func(after time.Duration) (bool, error) {
		if err := key.Replug(ctx); err != nil {
			return false, err
		}
		clk.Advance(after)
		c, err := key.Client(ctx, host.ClientOptions{})
		if err != nil {
			return false, err
		}
		err = c.Reset(ctx)
		if errors.Is(err, ctap.ErrNotAllowed) {
			return false, nil
		}
		return err == nil, err
	}
	if ok, err := try(7 * time.Second); err == nil && !ok {
		return "reset window: the key refuses authenticatorReset 7 s after power-up (CTAP 2.1 allows it within 10 s)"
	}
	if ok, err := try(11 * time.Second); err == nil && ok {
		return "reset window: the key accepts authenticatorReset 11 s after power-up (CTAP 2.1 allows it only within 10 s)"
	}
	return ""
}

// prober makes and uses the probes' credentials with PIN tokens, as a browser would.
type prober struct {
	c    *client.Client
	pin  string
	hmac bool
}

func (p *prober) token(ctx context.Context, perm uint64, rpID string) (*client.Token, error) {
	return p.c.GetPINToken(ctx, p.pin, perm, rpID)
}

func (p *prober) make(ctx context.Context, rpID, user string) ([]byte, error) {
	tok, err := p.token(ctx, ctap.PermMakeCredential, rpID)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256([]byte("probe " + rpID + " " + user))
	es256 := int64(-7)
	req := &ctap.MakeCredentialRequest{
		ClientDataHash:    cdh[:],
		RP:                &ctap.RPEntity{ID: rpID},
		User:              &ctap.UserEntity{ID: []byte(user), Name: user},
		PubKeyCredParams:  []ctap.CredentialParam{{Type: ctap.CredentialTypePublicKey, Alg: &es256}},
		Options:           &ctap.Options{RK: ctap.Bool(true)},
		PinUvAuthParam:    tok.Auth(cdh[:]),
		PinUvAuthProtocol: tok.ProtocolParam(),
	}
	if p.hmac {
		req.Extensions = &ctap.MakeCredentialExtensions{HMACSecret: ctap.Bool(true)}
	}
	res, err := p.c.MakeCredential(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.AuthData == nil || res.AuthData.Attested == nil {
		return nil, fmt.Errorf("probe: makeCredential without a credential")
	}
	return res.AuthData.Attested.CredentialID, nil
}

func (p *prober) assert(ctx context.Context, rpID string, allow []byte, ext *ctap.GetAssertionExtensions) (*client.AssertionResult, error) {
	tok, err := p.token(ctx, ctap.PermGetAssertion, rpID)
	if err != nil {
		return nil, err
	}
	cdh := sha256.Sum256([]byte("probe assertion " + rpID))
	req := &ctap.GetAssertionRequest{RPID: rpID, ClientDataHash: cdh[:], Extensions: ext,
		PinUvAuthParam: tok.Auth(cdh[:]), PinUvAuthProtocol: tok.ProtocolParam()}
	if allow != nil {
		req.AllowList = []ctap.CredentialDescriptor{{Type: ctap.CredentialTypePublicKey, ID: allow}}
	}
	return p.c.GetAssertion(ctx, req)
}

func (p *prober) hmacOutput(ctx context.Context, cred, salt []byte) ([]byte, error) {
	hs, in, err := p.c.NewHMACSecret(ctx, salt, nil)
	if err != nil {
		return nil, err
	}
	a, err := p.assert(ctx, probeRP, cred, &ctap.GetAssertionExtensions{HMACSecret: in})
	if err != nil {
		return nil, err
	}
	out, _, err := hs.Output(a.AuthData)
	return out, err
}
