package winmodel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/entra"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// logon is the lock-screen sign-in (unlock=false) or the unlock of a locked session: one
// getAssertion for login.microsoft.com with no allowList, UV, hmac-secret with the device's salt;
// Windows takes the first credential the key returns and never asks for the next.
func (h *Host) logon(ctx context.Context, a host.Action, unlock bool, n *notes) (result.Outcome, error) {
	kind := host.KindSignedIn
	if unlock {
		kind = host.KindUnlocked
		if h.session == "" {
			return notOffered(host.CodeUnsupportedScenario, "nobody is signed in: there is no session to unlock"), nil
		}
		n.add("unlocking the session of %s", h.session)
	}
	if w := h.cfg.HelloForBusiness; w != "" && w != host.WHfBNotConfigured {
		n.add("Windows Hello for Business %s: security-key sign-in does not depend on it (seed l.77)", w)
	}
	c, info, out, err := h.openWithInfo(ctx)
	if out != nil || err != nil {
		return deref(out), err
	}
	if o, err := h.probe(ctx, PathLogon, AfterGetInfo, c, info, nil, n); o != nil || err != nil {
		return deref(o), err
	}

	var (
		nonce *entra.Nonce
		req   *ctap.GetAssertionRequest
	)
	if h.online {
		if nonce, err = h.tenant.IssueNonce(); err != nil {
			return result.Outcome{}, err
		}
		req = nonce.Request()
		n.add("online: nonce from Entra")
	} else {
		// Offline there is no Entra nonce; the device challenges the key itself.
		var ch [32]byte
		if _, err := rand.Read(ch[:]); err != nil {
			return result.Outcome{}, err
		}
		cdh := sha256.Sum256(ch[:])
		req = &ctap.GetAssertionRequest{RPID: entra.RPID, ClientDataHash: cdh[:]}
		n.add("offline: local challenge, no Entra round trip")
	}
	v, o, err := verify(ctx, c, info, a.PIN, ctap.PermGetAssertion, entra.RPID, n)
	if o != nil || err != nil {
		return deref(o), err
	}
	var opts *ctap.Options
	req.PinUvAuthParam, req.PinUvAuthProtocol, opts = v.apply(req.ClientDataHash)
	req.Options = opts
	var hs *client.HMACSecret
	if info.HasExtension("hmac-secret") {
		var in *ctap.HMACSecretInput
		if hs, in, err = c.NewHMACSecret(ctx, h.salt[:], nil); err != nil {
			return outcomeOf("hmac-secret key agreement", err)
		}
		req.Extensions = &ctap.GetAssertionExtensions{HMACSecret: in}
	} else {
		n.add("the key lacks hmac-secret (getInfo): no offline secret can be used or cached")
	}
	if o, err := h.probe(ctx, PathLogon, BeforeRequest, c, info, req, n); o != nil || err != nil {
		return deref(o), err
	}
	first, err := c.GetAssertion(ctx, req)
	if err != nil {
		return outcomeOf("getAssertion", err)
	}
	var secret []byte
	if hs != nil {
		if secret, _, err = hs.Output(first.AuthData); err != nil {
			n.add("hmac-secret output unusable: %v", err)
			secret = nil
		}
	}
	var handle []byte
	if first.User != nil {
		handle = first.User.ID
	}
	account := h.accountOf(handle)
	n.add("the key reported %d credential(s) for %s; Windows takes the first (no getNextAssertion): credential %s, account %q",
		max(first.NumberOfCredentials, 1), entra.RPID, shortID(first.CredentialID), account)

	if h.online {
		if ten, acc := h.otherTenantOf(handle); ten != "" {
			return fail(host.CodeNoCredentials, fmt.Sprintf("the key's first credential is %s's, an account of tenant %s: Windows takes the last account added, and this device's tenant does not know it", acc, ten)), nil
		}
		si, err := h.tenant.Redeem(nonce, first)
		if err != nil {
			o, oerr := outcomeOf("Entra sign-in", err)
			if hs != nil && strings.Contains(o.Reason, "verification failed") {
				o.Reason += " (the getAssertion asked for hmac-secret)"
			}
			return o, oerr
		}
		account = si.UPN
		if o := h.onPremises(n); o != nil {
			return *o, nil
		}
		if unlock && account != h.session {
			return fail(host.CodeNoCredentials, fmt.Sprintf("the key's first credential is %s's; the session belongs to %s", account, h.session)), nil
		}
		if secret != nil {
			h.cache[cacheKey(account, first.CredentialID)] = &cached{account: account, handle: handle, credID: first.CredentialID, secret: secret}
			n.add("cached the hmac-secret output for %s with credential %s (offline sign-in)", account, shortID(first.CredentialID))
		}
		h.session = account
		return result.Outcome{Kind: kind, Account: account}, nil
	}

	ent := h.cache[cacheKey(account, first.CredentialID)]
	if account == "" || ent == nil {
		return fail(host.CodeOfflineNoCachedSecret, "no secret cached for this account and key by an earlier online sign-in"), nil
	}
	if secret == nil || subtle.ConstantTimeCompare(secret, ent.secret) != 1 {
		return fail(host.CodeOfflineSecretMismatch, "the key's hmac-secret output does not open the cached sign-in"), nil
	}
	if unlock && account != h.session {
		return fail(host.CodeNoCredentials, fmt.Sprintf("the key's first credential is %s's; the session belongs to %s", account, h.session)), nil
	}
	n.add("offline: hmac-secret output matches the cache of %s", account)
	h.session = account
	return result.Outcome{Kind: kind, Account: account}, nil
}

// onPremises is the second half of a hybrid joined device's sign-in: Active Directory is primary,
// so Windows trades the partial TGT Entra issued with the PRT for a full one at a domain
// controller (reference windows-host.md § On-premises resources for hybrid joined devices). It returns the
// failure when the organisation did not set that up, nil otherwise.
func (h *Host) onPremises(n *notes) *result.Outcome {
	if h.cfg.Join != host.JoinHybrid {
		return nil
	}
	op := h.cfg.OnPrem
	var o result.Outcome
	switch {
	case !op.KerberosServer:
		o = fail(host.CodeOnPremNotSetUp, "no Microsoft Entra Kerberos server object in the user's domain: Entra issues no partial TGT, so Windows gets no Active Directory ticket")
	case !op.PatchedDCs:
		o = fail(host.CodeOnPremNotSetUp, "no patched writable domain controller (Windows Server 2016/2019 with KB4534307/KB4534321) to trade the partial TGT for a full one")
	default:
		n.add("hybrid joined: Entra issued a partial TGT with the PRT; a patched domain controller traded it for a full Active Directory TGT")
		return nil
	}
	n.add("hybrid joined: Entra accepted the key, Active Directory did not: %s", o.Reason)
	return &o
}

func cacheKey(account string, credID []byte) string {
	return account + "/" + hex.EncodeToString(credID)
}

// accountOf names a user handle: from the tenant when online, from the device's cache offline
// (Windows knows only the users that signed in on it before).
func (h *Host) accountOf(handle []byte) string {
	if handle == nil {
		return ""
	}
	if h.online {
		return h.tenant.AccountByHandle(handle)
	}
	for _, e := range h.cache {
		if subtle.ConstantTimeCompare(e.handle, handle) == 1 {
			return e.account
		}
	}
	return ""
}

// webauthnSignIn is a browser sign-in to an Entra app: getAssertion and getNextAssertion for the
// account picker, where the user picks a.Pick ("" = the first offered).
func (h *Host) webauthnSignIn(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	if !h.online {
		return fail(host.CodeKeyError, "offline: the browser cannot reach Entra"), nil
	}
	c, info, out, err := h.openWithInfo(ctx)
	if out != nil || err != nil {
		return deref(out), err
	}
	if o, err := h.probe(ctx, PathBrowserSignIn, AfterGetInfo, c, info, nil, n); o != nil || err != nil {
		return deref(o), err
	}
	nonce, err := h.tenant.IssueNonce()
	if err != nil {
		return result.Outcome{}, err
	}
	req := nonce.Request()
	v, o, err := verify(ctx, c, info, a.PIN, ctap.PermGetAssertion, entra.RPID, n)
	if o != nil || err != nil {
		return deref(o), err
	}
	req.PinUvAuthParam, req.PinUvAuthProtocol, req.Options = v.apply(req.ClientDataHash)
	if o, err := h.probe(ctx, PathBrowserSignIn, BeforeRequest, c, info, req, n); o != nil || err != nil {
		return deref(o), err
	}
	list, err := c.Assertions(ctx, req)
	if err != nil {
		return outcomeOf("getAssertion", err)
	}
	names := make([]string, len(list))
	pick := -1
	for i, as := range list {
		if as.User != nil {
			names[i] = h.tenant.AccountByHandle(as.User.ID)
		}
		if pick < 0 && (a.Pick == "" || names[i] == a.Pick) {
			pick = i
		}
	}
	n.add("account picker (key's order, %d via getNextAssertion): %q", len(list)-1, names)
	if pick < 0 {
		return fail(host.CodeNoCredentials, fmt.Sprintf("%s is not among the key's accounts", a.Pick)), nil
	}
	n.add("picked %q", names[pick])
	si, err := h.tenant.Redeem(nonce, list[pick])
	if err != nil {
		return outcomeOf("Entra sign-in", err)
	}
	return result.Outcome{Kind: host.KindSignedIn, Account: si.UPN}, nil
}

func statusOf(err error) (ctap.Status, bool) {
	var st ctap.Status
	ok := errors.As(err, &st)
	return st, ok
}

func errMissing(a host.Action, field string) error {
	return fmt.Errorf("winmodel: %s: %s required", a.Name, field)
}
