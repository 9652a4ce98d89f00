package authenticator

import (
	"context"
	"crypto/sha256"
	"slices"
	"time"

	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// nextAssertionTimeout is how long after the previous call getNextAssertion may continue
// (CTAP 2.1 §6.3).
const nextAssertionTimeout = 30 * time.Second

// assertionCtx is what every assertion of one getAssertion sequence shares.
type assertionCtx struct {
	rpID           string
	rpIDHash       [32]byte
	clientDataHash []byte
	up, uv         bool
	ext            gaExtensions
	// thirdPartyPayment: the request asked for the thirdPartyPayment output (ctap22.go).
	thirdPartyPayment bool
}

// assertionQueue is the rest of a getAssertion without allowList, for getNextAssertion. It
// holds credential IDs only; keys are read again from the store when their turn comes.
type assertionQueue struct {
	assertionCtx
	ids   [][]byte
	total int
	last  time.Time
	// channel is the CTAPHID channel the getAssertion came on (hasChannel false when it came
	// from outside a CTAPHID device): only that channel may continue the sequence, so another
	// host on the same key cannot collect the rest of someone else's accounts.
	channel    uint32
	hasChannel bool
}

// getAssertion is authenticatorGetAssertion (CTAP 2.1 §6.2).
func (a *Authenticator) getAssertion(ctx context.Context, r *request) (any, error) {
	req, err := ctap.DecodeGetAssertion(r.params)
	if err != nil {
		return nil, err
	}
	if req.Extensions != nil {
		if err := checkKeyEncoding(hmacSecretKey(req.Extensions.HMACSecret)); err != nil {
			return nil, err
		}
	}
	ac := assertionCtx{rpID: req.RPID, rpIDHash: sha256.Sum256([]byte(req.RPID)), clientDataHash: req.ClientDataHash, up: true}
	hasParam, err := a.pinUvAuthStart(ctx, r, req.PinUvAuthParam, req.PinUvAuthProtocol, ac.rpID)
	if err != nil {
		return nil, err
	}
	uvOpt := false
	if o := req.Options; o != nil {
		if o.UV != nil && *o.UV && !hasParam {
			fps, err := a.enrolledFingerprints()
			if err != nil {
				return nil, err
			}
			if fps == 0 {
				return nil, ctap.Errorf(ctap.ErrInvalidOption, "uv requested but no built-in UV is enabled")
			}
			uvOpt = true
		}
		if o.RK != nil {
			return nil, ctap.Errorf(ctap.ErrUnsupportedOption, "getAssertion takes no rk option")
		}
		if o.UP != nil {
			ac.up = *o.UP
		}
	}
	if err := a.upFalseRefused(ac.up); err != nil {
		return nil, err
	}
	if a.p.Quirks.UPFalseIgnored {
		ac.up = true // the upFalseIgnored quirk: up=false is not honoured
	}
	if a.p.Config && ac.up && !uvOpt {
		if uvOpt, err = a.gaAlwaysUV(hasParam); err != nil {
			return nil, err
		}
	}
	upDone := false
	switch {
	case hasParam:
		use, err := a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, req.ClientDataHash, ctap.PermGetAssertion, ac.rpID)
		if err != nil {
			return nil, err
		}
		if !use.UserVerified {
			return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "token not user-verified")
		}
		ac.uv, upDone = true, use.UserPresent
		a.tokenSingleUse()
	case uvOpt:
		if err := a.builtInUV(ctx, r, ac.rpID); err != nil {
			return nil, err
		}
		ac.uv, upDone = true, true
	}
	creds, err := a.locateCredentials(req.AllowList, &ac)
	if err != nil {
		return nil, err
	}
	defer func() { wipeAll(creds) }()
	if len(creds) == 0 {
		return nil, ctap.Errorf(ctap.ErrNoCredentials, "no credential for %s", ac.rpID)
	}
	ac.thirdPartyPayment = a.wantsThirdPartyPayment(req.Extensions)
	if ac.ext, err = a.parseGAExtensions(req.Extensions); err != nil {
		return nil, err
	}
	hs, err := a.openHMACSecret(ac.ext.hmacSecret)
	if err != nil {
		return nil, err
	}
	defer hs.wipe()
	if ac.up {
		if !upDone {
			if err := a.askUser(ctx, r, user.Presence, ac.rpID); err != nil {
				return nil, err
			}
		}
		a.afterTokenUse()
	}
	if uvOpt {
		ac.up = true // §6.2.2 step 8: the finger on the sensor is evidence of presence, even with up=false
	}
	n := len(creds)
	resp, err := a.assertion(creds[0], &ac, hs, ac.uv && n > 1)
	if err != nil {
		return nil, err
	}
	if n > 1 {
		resp.NumberOfCredentials = n
		q := &assertionQueue{assertionCtx: ac, total: n, last: a.clock.Now()}
		q.channel, q.hasChannel = ctaphid.Channel(ctx)
		for _, c := range creds[1:] {
			q.ids = append(q.ids, c.id)
		}
		a.mu.Lock()
		a.next = q
		a.mu.Unlock()
	}
	return resp, nil
}

// gaAlwaysUV applies alwaysUv (§6.2.2 step 5) to a request with up true and, unless hasParam, no
// uv option; it reports whether built-in UV must now run. A key that nothing protects answers
// PUAT_REQUIRED (or OPERATION_DENIED without clientPin) even to a pinUvAuthParam (step 5.1).
func (a *Authenticator) gaAlwaysUV(hasParam bool) (bool, error) {
	alwaysUV, err := a.alwaysUVSet()
	if err != nil || !alwaysUV {
		return false, err
	}
	fps, err := a.enrolledFingerprints()
	if err != nil {
		return false, err
	}
	if hasParam {
		pin, err := a.loadPIN()
		if err != nil || fps > 0 || pin.Set {
			return false, err
		}
	} else if fps > 0 {
		return true, nil
	}
	if a.p.ClientPIN {
		return false, ctap.Errorf(ctap.ErrPUATRequired, "alwaysUv needs a pinUvAuthToken")
	}
	return false, ctap.Errorf(ctap.ErrOperationDenied, "alwaysUv and no user verification")
}

// getAssertion reads persistent state only when the request can depend on it, through the two
// helpers below, rather than all of liveState: on the common path (UP only, no alwaysUv) those
// store reads were a third of an assertion's CPU.

// enrolledFingerprints is the number of enrolled fingerprints, 0 without built-in UV.
func (a *Authenticator) enrolledFingerprints() (int, error) {
	if !a.p.BuiltInUV {
		return 0, nil
	}
	fps, err := a.st.Fingerprints()
	if err != nil {
		return 0, ctap.Errorf(ctap.ErrOther, "reading fingerprints: %v", err)
	}
	return len(fps), nil
}

// alwaysUVSet reports the alwaysUv setting.
func (a *Authenticator) alwaysUVSet() (bool, error) {
	set, err := a.st.Settings()
	if err != nil {
		return false, ctap.Errorf(ctap.ErrOther, "reading settings: %v", err)
	}
	return set.AlwaysUV, nil
}

// locateCredentials finds the applicable credentials (§6.2.2 step 7): with an allowList the
// first of ours that credProtect lets through; without, the RP's discoverable credentials,
// newest first.
func (a *Authenticator) locateCredentials(allow []ctap.CredentialDescriptor, ac *assertionCtx) ([]*credential, error) {
	if len(allow) > 0 {
		for _, d := range allow {
			if d.Type != ctap.CredentialTypePublicKey {
				continue
			}
			c, err := a.findCredential(d.ID, ac.rpID, ac.rpIDHash[:])
			if err != nil {
				return nil, err
			}
			if c == nil {
				continue
			}
			if c.credProtect == ctap.CredProtectUVRequired && !ac.uv {
				c.wipe()
				continue
			}
			return []*credential{c}, nil
		}
		return nil, nil
	}
	if !a.p.ResidentKeys {
		return nil, nil
	}
	stored, err := a.discoverable(ac.rpID)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "reading credentials: %v", err)
	}
	var out []*credential
	for _, rc := range stored {
		if rc.CredProtect >= ctap.CredProtectUVOptionalWithCredList && !ac.uv {
			clear(rc.PrivateKey)
			continue
		}
		out = append(out, residentCredential(rc))
	}
	if a.p.Quirks.OldestFirst {
		slices.Reverse(out)
	}
	return out, nil
}

// assertion signs one assertion for c, with its extension outputs.
func (a *Authenticator) assertion(c *credential, ac *assertionCtx, hs *hmacSecretSession, userDetails bool) (*ctap.GetAssertionResponse, error) {
	var exts map[string]any // made only for an extension output: most assertions have none
	put := func(name string, v any) {
		if exts == nil {
			exts = map[string]any{}
		}
		exts[name] = v
	}
	if hs != nil && c.hmacSecret {
		out, err := a.hmacSecretOutput(hs, c, ac.uv)
		if err != nil {
			return nil, err
		}
		put(extHMACSecret, out)
	}
	if ac.ext.credBlob {
		put(extCredBlob, append([]byte{}, c.blob...))
	}
	if ac.thirdPartyPayment {
		put(extThirdPartyPayment, isThirdPartyPayment(c.id))
	}
	ad, err := a.newAuthData(ac.rpIDHash, exts)
	if err != nil {
		return nil, err
	}
	if ac.up {
		ad.Flags |= ctap.FlagUP
	}
	if ac.uv {
		ad.Flags |= ctap.FlagUV
	}
	authData := ad.Marshal()
	msg := make([]byte, 0, len(authData)+len(ac.clientDataHash))
	msg = append(append(msg, authData...), ac.clientDataHash...)
	sig, err := a.sign(c.alg, c.secret, a.badSignature(msg, hs != nil))
	if err != nil {
		return nil, err
	}
	resp := &ctap.GetAssertionResponse{
		Credential: &ctap.CredentialDescriptor{ID: c.id, Type: ctap.CredentialTypePublicKey},
		AuthData:   authData,
		Signature:  sig,
	}
	if rc := c.resident; rc != nil {
		resp.User = &ctap.UserEntity{ID: rc.UserID}
		if userDetails {
			resp.User.Name, resp.User.DisplayName = rc.UserName, rc.UserDisplayName
		}
		if ac.ext.largeBlobKey && len(rc.LargeBlobKey) > 0 {
			resp.LargeBlobKey = append([]byte(nil), rc.LargeBlobKey...)
		}
	}
	return resp, nil
}

// getNextAssertion is authenticatorGetNextAssertion (§6.3): the next credential of the last
// getAssertion without allowList, within 30 s of the previous call, on the channel that sent
// that getAssertion.
func (a *Authenticator) getNextAssertion(ctx context.Context, _ *request) (any, error) {
	a.mu.Lock()
	q := a.next
	if q == nil || len(q.ids) == 0 {
		a.next = nil
		a.mu.Unlock()
		return nil, ctap.Errorf(ctap.ErrNotAllowed, "no getAssertion to continue")
	}
	if ch, ok := ctaphid.Channel(ctx); ok != q.hasChannel || ch != q.channel {
		// Refused and left alone: the host that began the sequence may still continue it.
		a.mu.Unlock()
		return nil, ctap.Errorf(ctap.ErrNotAllowed, "getNextAssertion from another channel than its getAssertion")
	}
	now := a.clock.Now()
	if now.Sub(q.last) > nextAssertionTimeout {
		a.next = nil
		a.mu.Unlock()
		return nil, ctap.Errorf(ctap.ErrNotAllowed, "getNextAssertion timer expired")
	}
	id := q.ids[0]
	q.ids = q.ids[1:]
	q.last = now
	if len(q.ids) == 0 {
		a.next = nil
	}
	a.mu.Unlock()

	c, err := a.findCredential(id, q.rpID, q.rpIDHash[:])
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, ctap.Errorf(ctap.ErrNotAllowed, "credential vanished during getNextAssertion")
	}
	defer c.wipe()
	hs, err := a.openHMACSecret(q.ext.hmacSecret)
	if err != nil {
		return nil, err
	}
	defer hs.wipe()
	return a.assertion(c, &q.assertionCtx, hs, q.uv)
}
