package winmodel

import (
	"context"
	"encoding/hex"
	"errors"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/entra"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// requirementsFromInfo checks Microsoft's key requirements (resident keys, client PIN or built-in
// UV, hmac-secret; microsoft-compatible-security-key.md) on getInfo, as the browser and Entra
// surface them before any credential is made. It returns the failing outcome, or nil.
func requirementsFromInfo(info *ctap.GetInfoResponse, n *notes) *result.Outcome {
	rk, _ := info.Option("rk")
	_, hasPIN := info.Option("clientPin")
	_, hasUV := info.Option("uv")
	hmac := info.HasExtension("hmac-secret")
	n.add("getInfo decided: options.rk=%v, clientPin present=%v, uv present=%v, extensions has hmac-secret=%v, versions %v",
		rk, hasPIN, hasUV, hmac, info.Versions)
	var o result.Outcome
	switch {
	case !rk:
		o = fail(host.CodeNoResidentKeys, "getInfo options.rk is not true: the key cannot store discoverable credentials")
	case !hasPIN && !hasUV:
		o = fail(host.CodeNoUserVerification, "getInfo has neither clientPin nor uv: Entra requires user verification")
	case !hmac:
		o = fail(host.CodeNoHMACSecret, "getInfo extensions lack hmac-secret: Windows cannot protect its offline cache")
	default:
		return nil
	}
	return &o
}

// register is Entra "Security info" › Add method › Security key in a browser on this device.
func (h *Host) register(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	return h.registerAt(ctx, a, h.tenant, n)
}

// registerOtherTenant is the same registration for an account of another organisation (Args
// tenant): a second Entra account on the key, unknown to this device's tenant.
func (h *Host) registerOtherTenant(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	name := a.Args["tenant"]
	if name == "" {
		return result.Outcome{}, errMissing(a, "Args tenant")
	}
	ten, ok := h.others[name]
	if !ok {
		var err error
		if ten, err = entra.New(entra.Policy{}); err != nil {
			return result.Outcome{}, err
		}
		if h.others == nil {
			h.others = map[string]*entra.Tenant{}
		}
		h.others[name] = ten
	}
	n.add("registering with tenant %s, not this device's", name)
	return h.registerAt(ctx, a, ten, n)
}

// otherTenantOf names the other tenant that knows a user handle and its account, "" for none.
func (h *Host) otherTenantOf(handle []byte) (tenant, account string) {
	for name, ten := range h.others {
		if acc := ten.AccountByHandle(handle); acc != "" {
			return name, acc
		}
	}
	return "", ""
}

// registerAt registers a.Account's key with tenant ten.
func (h *Host) registerAt(ctx context.Context, a host.Action, ten *entra.Tenant, n *notes) (result.Outcome, error) {
	if a.Account == "" {
		return result.Outcome{}, errMissing(a, "Account")
	}
	if !h.online {
		return fail(host.CodeKeyError, "offline: Security info needs the network"), nil
	}
	c, err := h.open(ctx)
	if err != nil {
		return result.Outcome{}, err
	}
	info, err := c.GetInfo(ctx)
	if err != nil {
		if st, ok := statusOf(err); (ok && st == ctap.ErrInvalidCommand) || errors.Is(err, ctaphid.ErrInvalidCmd) {
			n.add("getInfo refused as an unknown command: a CTAP1/U2F-only key")
			return fail(host.CodeNoResidentKeys, "CTAP1/U2F-only key: no resident keys, no PIN, no hmac-secret"), nil
		}
		return outcomeOf("getInfo", err)
	}
	if o := requirementsFromInfo(info, n); o != nil {
		return *o, nil
	}
	if o, err := h.probe(ctx, PathBrowserRegister, AfterGetInfo, c, info, nil, n); o != nil || err != nil {
		return deref(o), err
	}
	if set, has := info.Option("clientPin"); has && !set {
		if a.PIN == "" {
			return fail(host.CodePINRequired, "the key has no PIN and none was typed"), nil
		}
		// The browser's set-up flow asks for a new PIN before registering.
		if err := c.SetPIN(ctx, a.PIN); err != nil {
			return outcomeOf("setPIN", err)
		}
		n.add("the key had no PIN: set it first (protocol %d)", pinProtocolOffered(info))
		if info, err = c.GetInfo(ctx); err != nil {
			return outcomeOf("getInfo", err)
		}
	}
	pend, err := ten.BeginRegistration(a.Account)
	if err != nil {
		return result.Outcome{}, err
	}
	v, o, err := verify(ctx, c, info, a.PIN, ctap.PermMakeCredential, entra.RPID, n)
	if o != nil || err != nil {
		return deref(o), err
	}
	req := pend.Request
	v.applyMakeCredential(req, pend.ClientDataHash)
	if o, err := h.probe(ctx, PathBrowserRegister, BeforeRequest, c, info, req, n); o != nil || err != nil {
		return deref(o), err
	}
	res, err := c.MakeCredential(ctx, req)
	if st, ok := statusOf(err); ok && st == ctap.ErrPINAuthInvalid {
		// The token was just issued for this PIN, so the key's refusal is not the PIN's fault;
		// Windows reads it as one all the same (0x8007052E) and asks for the PIN again.
		n.add("makeCredential answered %v right after a PIN token was issued: Windows reports 0x8007052E and asks for the PIN again", st)
		return fail(host.CodePINInvalid, "the key answered makeCredential CTAP2_ERR_PIN_AUTH_INVALID with a fresh PIN token: Windows shows 0x8007052E (user name or password is incorrect) and asks for the PIN again, in a loop"), nil
	}
	if err != nil {
		return outcomeOf("makeCredential", err)
	}
	n.add("makeCredential: rk, credProtect %d, hmac-secret, attestation %q; credential %s, AAGUID %x",
		entra.CredProtectLevel, res.Response.Fmt, shortID(res.CredentialID), attAAGUID(res))
	cred, err := ten.FinishRegistration(pend, res)
	if err != nil {
		return outcomeOf("Entra registration", err)
	}
	return result.Outcome{Kind: host.KindRegistered, Account: cred.UPN}, nil
}

func attAAGUID(res *client.MakeCredentialResult) []byte {
	if res.AuthData == nil || res.AuthData.Attested == nil {
		return nil
	}
	return res.AuthData.Attested.AAGUID[:]
}

// shortID abbreviates a credential ID for notes (IDs are not secret, only long).
func shortID(id []byte) string {
	s := hex.EncodeToString(id)
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func deref(o *result.Outcome) result.Outcome {
	if o == nil {
		return result.Outcome{}
	}
	return *o
}
