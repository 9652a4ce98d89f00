package winmodel

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// setPIN sets the first PIN.
func (h *Host) setPIN(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	if a.NewPIN == "" {
		return result.Outcome{}, errMissing(a, "NewPIN")
	}
	c, err := h.open(ctx)
	if err != nil {
		return result.Outcome{}, err
	}
	if err := c.SetPIN(ctx, a.NewPIN); err != nil {
		return outcomeOf("setPIN", err)
	}
	return done("PIN set"), nil
}

// changePIN is Settings › Security Key › Manage › Change PIN.
func (h *Host) changePIN(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	if a.NewPIN == "" {
		return result.Outcome{}, errMissing(a, "NewPIN")
	}
	c, info, out, err := h.openWithInfo(ctx)
	if out != nil || err != nil {
		return deref(out), err
	}
	if set, _ := info.Option("clientPin"); !set {
		return fail(host.CodePINRequired, "the key has no PIN to change"), nil
	}
	if err := c.ChangePIN(ctx, a.PIN, a.NewPIN); err != nil {
		return outcomeOf("changePIN", err)
	}
	n.add("changePIN with PIN/UV protocol %d", pinProtocolOffered(info))
	return done("PIN changed"), nil
}

// enrollFingerprint is Settings › Security Key › Manage › Fingerprint › Add.
func (h *Host) enrollFingerprint(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	c, info, out, err := h.openWithInfo(ctx)
	if out != nil || err != nil {
		return deref(out), err
	}
	_, bio := info.Option("bioEnroll")
	_, bioPre := info.Option("userVerificationMgmtPreview")
	n.add("getInfo options bioEnroll present=%v, userVerificationMgmtPreview present=%v", bio, bioPre)
	if !bio && !bioPre {
		return notOffered(host.CodeUnsupportedScenario, "the key has no fingerprint sensor: Manage offers no fingerprint set-up"), nil
	}
	v, o, err := verify(ctx, c, info, a.PIN, ctap.PermBioEnrollment, "", n)
	if o != nil || err != nil {
		return deref(o), err
	}
	if v.tok == nil {
		return fail(host.CodePINRequired, "fingerprint enrolment needs a PIN token"), nil
	}
	_, samples, err := c.Bio(v.tok).Enroll(ctx, a.Args["name"])
	if err != nil {
		return outcomeOf("bioEnrollment", err)
	}
	n.add("fingerprint enrolled in %d samples", len(samples))
	return done("fingerprint enrolled"), nil
}

// resetKey is Settings › Security Key › Manage › Reset: the key accepts it only within 10 s of
// power-up (CTAP 2.1 §6.6), which the key itself decides.
func (h *Host) resetKey(ctx context.Context, n *notes) (result.Outcome, error) {
	c, err := h.open(ctx)
	if err != nil {
		return result.Outcome{}, err
	}
	if err := c.Reset(ctx); err != nil {
		if st, ok := statusOf(err); ok && st == ctap.ErrNotAllowed {
			n.add("authenticatorReset answered %v: outside the key's power-up window", st)
			return fail(host.CodeResetNotAllowed, "reset is only allowed shortly after plugging the key in"), nil
		}
		if st, ok := statusOf(err); ok && st != ctap.ErrKeepaliveCancel && st != ctap.ErrUserActionTimeout {
			n.add("authenticatorReset answered %v", st)
			return fail(host.CodeResetFailed, fmt.Sprintf("Windows says the security key could not be reset: the key answered authenticatorReset %v", st)), nil
		}
		return outcomeOf("reset", err)
	}
	return done("key reset"), nil
}

// keyAAGUID reads the key's AAGUID from getInfo.
func (h *Host) keyAAGUID(ctx context.Context) (string, error) {
	c, err := h.open(ctx)
	if err != nil {
		return "", err
	}
	info, err := c.GetInfo(ctx)
	if err != nil {
		return "", fmt.Errorf("winmodel: getInfo: %w", err)
	}
	return hex.EncodeToString(info.AAGUID), nil
}

// removeKey deletes this key's credentials from the account's Security info (Entra side): those
// whose AAGUID is this key's.
func (h *Host) removeKey(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	if a.Account == "" {
		return result.Outcome{}, errMissing(a, "Account")
	}
	aaguid, err := h.keyAAGUID(ctx)
	if err != nil {
		return result.Outcome{}, err
	}
	removed := 0
	for _, c := range h.tenant.Credentials(a.Account) {
		if !c.Removed && hex.EncodeToString(c.AAGUID[:]) == aaguid && h.tenant.RemoveCredential(a.Account, c.ID) {
			removed++
			n.add("removed credential %s from %s's Security info", shortID(c.ID), a.Account)
		}
	}
	if removed == 0 {
		return fail(host.CodeNoCredentials, a.Account+" has no registered credential of this key"), nil
	}
	return done(fmt.Sprintf("%d credential(s) removed", removed)), nil
}

// restrictAAGUID adds an AAGUID (Args aaguid; "key" or empty = this key's) to the tenant's key
// restriction block or allow list.
func (h *Host) restrictAAGUID(ctx context.Context, a host.Action, n *notes) (result.Outcome, error) {
	aaguid := strings.TrimSpace(a.Args["aaguid"])
	if aaguid == "" || aaguid == "key" {
		var err error
		if aaguid, err = h.keyAAGUID(ctx); err != nil {
			return result.Outcome{}, err
		}
	}
	if a.Name == host.ActBlockAAGUID {
		h.tenant.Block(aaguid)
		n.add("tenant blocks AAGUID %s", aaguid)
	} else {
		h.tenant.Allow(aaguid)
		n.add("tenant allows AAGUID %s", aaguid)
	}
	return done("key restriction updated"), nil
}
