package winmodel

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/go-webauthn/webauthn/protocol"
)

// registerOtherSite is a passkey registration at another website (Args rp) from a browser on this
// device: a discoverable credential of another relying party on the same key, as most users'
// keys hold. The site is a go-webauthn relying party of its own; Entra never hears of it, and a
// conforming key never returns it to a getAssertion for login.microsoft.com.
func (h *Host) registerOtherSite(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	rpID := a.Args["rp"]
	if a.Account == "" || rpID == "" {
		return result.Outcome{}, errMissing(a, "Account and Args rp")
	}
	if !h.online {
		return fail(host.CodeKeyError, "offline: the site cannot be reached"), nil
	}
	site, err := h.site(rpID)
	if err != nil {
		return result.Outcome{}, err
	}
	c, info, out, err := h.openWithInfo(ctx)
	if out != nil || err != nil {
		return deref(out), err
	}
	if o, err := h.probe(ctx, PathBrowserRegister, AfterGetInfo, c, info, nil, n); o != nil || err != nil {
		return deref(o), err
	}
	if rk, _ := info.Option("rk"); !rk {
		return fail(host.CodeNoResidentKeys, "getInfo options.rk is not true: no passkey for "+rpID), nil
	}
	if set, has := info.Option("clientPin"); has && !set && a.PIN != "" {
		if err := c.SetPIN(ctx, a.PIN); err != nil {
			return outcomeOf("setPIN", err)
		}
		if info, err = c.GetInfo(ctx); err != nil {
			return outcomeOf("getInfo", err)
		}
	}
	// The site's own user handle: any relying party's, unrelated to Entra's.
	handle := sha256.Sum256([]byte(rpID + "\x00" + a.Account))
	// The page's userVerification (Args uv, default required) and, with Args exclude=other-key,
	// an excludeList naming a credential of another key the user registered earlier.
	uvReq := protocol.VerificationRequired
	if a.Args["uv"] != "" {
		uvReq = protocol.UserVerificationRequirement(a.Args["uv"])
	}
	pend, err := site.BeginRegister(&rp.User{ID: handle[:16], Name: a.Account, DisplayName: a.Account},
		rp.RegisterOptions{ResidentKey: true, UserVerification: uvReq})
	if err != nil {
		return result.Outcome{}, err
	}
	req := pend.Request
	if a.Args["exclude"] == "other-key" {
		other := sha256.Sum256([]byte("another key's credential\x00" + rpID + "\x00" + a.Account))
		req.ExcludeList = append(req.ExcludeList, ctap.CredentialDescriptor{ID: other[:], Type: ctap.CredentialTypePublicKey})
		n.add("excludeList: a credential of another key %s registered earlier", shortID(other[:]))
	}
	if uvReq == protocol.VerificationDiscouraged {
		n.add("userVerification discouraged: no PIN asked")
	} else {
		v, o, err := verify(ctx, c, info, a.PIN, ctap.PermMakeCredential, rpID, n)
		if o != nil || err != nil {
			return deref(o), err
		}
		v.applyMakeCredential(req, pend.ClientDataHash)
	}
	if o, err := h.probe(ctx, PathBrowserRegister, BeforeRequest, c, info, req, n); o != nil || err != nil {
		return deref(o), err
	}
	res, err := c.MakeCredential(ctx, req)
	if err != nil {
		return outcomeOf("makeCredential", err)
	}
	if _, err := site.FinishRegister(pend, res); err != nil {
		return fail(host.CodeKeyError, fmt.Sprintf("%s refused the registration: %v", rpID, err)), nil
	}
	n.add("passkey for %s at %s (relying party %s): credential %s; Entra knows nothing of it", a.Account, rpID, rpID, shortID(res.CredentialID))
	return result.Outcome{Kind: host.KindRegistered, Account: a.Account}, nil
}

// site returns the relying party of another website, made on first use.
func (h *Host) site(rpID string) (*rp.RP, error) {
	if s, ok := h.sites[rpID]; ok {
		return s, nil
	}
	s, err := rp.New(rpID, "https://"+rpID)
	if err != nil {
		return nil, fmt.Errorf("winmodel: site %s: %w", rpID, err)
	}
	if h.sites == nil {
		h.sites = map[string]*rp.RP{}
	}
	h.sites[rpID] = s
	return s, nil
}
