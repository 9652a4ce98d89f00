package authenticator

import (
	"context"
	"crypto/sha256"
	"errors"
	"unicode/utf8"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
)

// maxUserIDLen is the WebAuthn limit on user.id; maxStoredString is how much of a name a key
// keeps (CTAP 2.1 lets authenticators truncate names to 64 bytes).
const (
	maxUserIDLen    = 64
	maxStoredString = 64
)

// pinUvAuthStart is how makeCredential and getAssertion both begin (CTAP 2.1 §6.1.2 steps 1-2,
// §6.2.2 steps 1-2): the zero-length pinUvAuthParam probe, then the protocol of a real
// pinUvAuthParam must be one the key offers. It reports whether a pinUvAuthParam came.
func (a *Authenticator) pinUvAuthStart(ctx context.Context, r *request, param []byte, protoV *uint64, rpID string) (bool, error) {
	if err := a.pinProbe(ctx, r, param, rpID); err != nil {
		return false, err
	}
	if param == nil {
		return false, nil
	}
	if _, err := a.protocol(protoV); err != nil {
		return false, err
	}
	return true, nil
}

// pinProbe answers the zero-length pinUvAuthParam a platform sends to make the user pick a
// key (CTAP 2.1 §6.1.2 step 1, §6.2.2 step 1): after a touch, PIN_NOT_SET or PIN_INVALID.
// It returns nil when param is not such a probe.
func (a *Authenticator) pinProbe(ctx context.Context, r *request, param []byte, rpID string) error {
	if param == nil || len(param) != 0 || !(a.p.ClientPIN || a.p.PinUvAuthToken) {
		return nil
	}
	if err := a.askUser(ctx, r, user.Presence, rpID); err != nil {
		if ctap.StatusOf(err) == ctap.ErrKeepaliveCancel {
			return err
		}
		return ctap.Errorf(ctap.ErrOperationDenied, "no touch for the selection probe")
	}
	pin, err := a.st.PIN()
	if err != nil {
		return ctap.Errorf(ctap.ErrOther, "reading PIN state: %v", err)
	}
	if !pin.Set {
		return ctap.Errorf(ctap.ErrPINNotSet, "selection probe, no PIN set")
	}
	return ctap.Errorf(ctap.ErrPINInvalid, "selection probe, PIN set")
}

// mcState is what makeCredential has established about the request.
type mcState struct {
	rpID     string
	rpIDHash [32]byte
	alg      int
	rk       bool
	uv       bool
	upDone   bool
	ep       bool
	ext      mcExtensions
	live     liveState
}

// makeCredential is authenticatorMakeCredential (CTAP 2.1 §6.1).
func (a *Authenticator) makeCredential(ctx context.Context, r *request) (any, error) {
	req, err := ctap.DecodeMakeCredential(r.params)
	if err != nil {
		return nil, err
	}
	if req.Extensions != nil {
		if err := checkKeyEncoding(hmacSecretKey(req.Extensions.HMACSecretMC)); err != nil {
			return nil, err
		}
	}
	m := &mcState{rpID: req.RP.ID, rpIDHash: sha256.Sum256([]byte(req.RP.ID))}
	if _, err := a.pinUvAuthStart(ctx, r, req.PinUvAuthParam, req.PinUvAuthProtocol, m.rpID); err != nil {
		return nil, err
	}
	if req.User != nil {
		if err := a.longUserFieldsRefused(*req.User); err != nil {
			return nil, err
		}
	}
	for _, p := range req.PubKeyCredParams {
		if p.Type == ctap.CredentialTypePublicKey && a.supportsAlg(*p.Alg) {
			m.alg = int(*p.Alg)
			break
		}
	}
	if m.alg == 0 {
		return nil, ctap.Errorf(ctap.ErrUnsupportedAlgorithm, "no supported algorithm in pubKeyCredParams")
	}
	if m.live, err = a.liveState(); err != nil {
		return nil, err
	}
	if err := a.mcOptions(req, m); err != nil {
		return nil, err
	}
	if err := a.mcUserVerification(ctx, r, req, m); err != nil {
		return nil, err
	}
	if m.rk && (len(req.User.ID) == 0 || len(req.User.ID) > maxUserIDLen) {
		return nil, ctap.Errorf(ctap.ErrInvalidLength, "user.id of %d bytes", len(req.User.ID))
	}
	if err := a.checkExcludeList(ctx, r, req.ExcludeList, m); err != nil {
		return nil, err
	}
	if m.ext, err = a.parseMCExtensions(req.Extensions, m.rk); err != nil {
		return nil, err
	}
	hs, err := a.openHMACSecret(m.ext.hmacSecretMC)
	if err != nil {
		return nil, err
	}
	defer hs.wipe()
	if !m.upDone {
		if err := a.askUser(ctx, r, user.Presence, m.rpID); err != nil {
			return nil, err
		}
	}
	a.afterTokenUse()
	if m.rk {
		if err := a.checkCapacity(m.rpID, req.User.ID); err != nil {
			return nil, err
		}
	}
	return a.createCredential(req, m, hs)
}

// mcOptions applies the options and the alwaysUv / makeCredUvNotRqd rules (§6.1.2 steps 5–9).
func (a *Authenticator) mcOptions(req *ctap.MakeCredentialRequest, m *mcState) error {
	hasParam := req.PinUvAuthParam != nil
	uvOpt := false
	if o := req.Options; o != nil {
		if o.UV != nil && *o.UV && !hasParam {
			if !a.p.BuiltInUV || m.live.fingerprints == 0 {
				return ctap.Errorf(ctap.ErrInvalidOption, "uv requested but no built-in UV is enabled")
			}
			uvOpt = true
		}
		if o.RK != nil {
			if !a.p.ResidentKeys {
				return ctap.Errorf(ctap.ErrUnsupportedOption, "no resident keys")
			}
			m.rk = *o.RK
		}
		if o.UP != nil && !*o.UP {
			return ctap.Errorf(ctap.ErrInvalidOption, "makeCredential needs up")
		}
	}
	s := m.live
	alwaysUV := s.alwaysUV && a.p.Config
	if alwaysUV {
		if !s.uvProtected() {
			if a.p.ClientPIN {
				return ctap.Errorf(ctap.ErrPUATRequired, "alwaysUv and no PIN set")
			}
			return ctap.Errorf(ctap.ErrOperationDenied, "alwaysUv and no user verification")
		}
		if !hasParam && !uvOpt {
			if !a.p.BuiltInUV || s.fingerprints == 0 {
				return ctap.Errorf(ctap.ErrPUATRequired, "alwaysUv needs a pinUvAuthToken")
			}
			uvOpt = true
		}
	}
	uvNotRqd := a.p.MakeCredUVNotRqd && a.p.Has(ctap.VersionFIDO21) && !alwaysUV
	if s.uvProtected() && !hasParam && !uvOpt && (!uvNotRqd || m.rk) {
		return ctap.Errorf(ctap.ErrPUATRequired, "key is protected by user verification")
	}
	if req.EnterpriseAttestation != nil {
		if !a.p.EnterpriseAtt || !s.epEnabled {
			return ctap.Errorf(ctap.ErrInvalidParameter, "enterprise attestation not enabled")
		}
		if v := *req.EnterpriseAttestation; v != 1 && v != 2 {
			return ctap.Errorf(ctap.ErrInvalidOption, "enterpriseAttestation %d", v)
		}
		m.ep = true
	}
	m.uv = uvOpt // provisional: built-in UV still has to succeed
	return nil
}

// mcUserVerification checks the pinUvAuthToken or runs built-in UV (§6.1.2 step 11).
func (a *Authenticator) mcUserVerification(ctx context.Context, r *request, req *ctap.MakeCredentialRequest, m *mcState) error {
	switch {
	case req.PinUvAuthParam != nil:
		use, err := a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, req.ClientDataHash, ctap.PermMakeCredential, m.rpID)
		if err != nil {
			return err
		}
		if !use.UserVerified {
			return ctap.Errorf(ctap.ErrPINAuthInvalid, "token not user-verified")
		}
		m.uv, m.upDone = true, use.UserPresent
		a.tokenSingleUse()
	case m.uv:
		if err := a.builtInUV(ctx, r, m.rpID); err != nil {
			m.uv = false
			return err
		}
		m.upDone = true // the finger on the sensor is also the touch
	}
	return nil
}

// checkExcludeList refuses to make a second credential for an account the key already holds
// (§6.1.2 step 12). A credProtect-3 credential only counts when the user was verified.
func (a *Authenticator) checkExcludeList(ctx context.Context, r *request, list []ctap.CredentialDescriptor, m *mcState) error {
	for _, d := range list {
		if d.Type != ctap.CredentialTypePublicKey {
			continue
		}
		c, err := a.findCredential(d.ID, m.rpID, m.rpIDHash[:])
		if err != nil {
			return err
		}
		if c == nil {
			continue
		}
		excluded := c.credProtect != ctap.CredProtectUVRequired || m.uv
		c.wipe()
		if !excluded {
			continue
		}
		if !m.upDone {
			// The touch keeps a page from probing the list silently; its answer does not matter.
			if err := a.askUser(ctx, r, user.Presence, m.rpID); ctap.StatusOf(err) == ctap.ErrKeepaliveCancel {
				return err
			}
		}
		return ctap.Errorf(ctap.ErrCredentialExcluded, "credential in excludeList")
	}
	return nil
}

// checkCapacity refuses a new discoverable credential past the persona's capacity; replacing
// the same account's credential needs no room.
func (a *Authenticator) checkCapacity(rpID string, userID []byte) error {
	existing, err := a.st.Resident(rpID)
	if err != nil {
		return ctap.Errorf(ctap.ErrOther, "reading credentials: %v", err)
	}
	for _, c := range existing {
		clear(c.PrivateKey)
	}
	for _, c := range existing {
		if string(c.UserID) == string(userID) {
			return nil
		}
	}
	n, err := a.st.CountResident()
	if err != nil {
		return ctap.Errorf(ctap.ErrOther, "counting credentials: %v", err)
	}
	if n >= a.p.ResidentCapacity {
		return ctap.Errorf(ctap.ErrKeyStoreFull, "%d discoverable credentials stored", n)
	}
	return nil
}

// createCredential makes the key pair, stores or seals it, and builds the response.
func (a *Authenticator) createCredential(req *ctap.MakeCredentialRequest, m *mcState, hs *hmacSecretSession) (any, error) {
	secret, coseKey, err := a.newKeyPair(m.alg)
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	ext := &m.ext
	var sealedBlob []byte
	if !m.rk && ext.credBlob != nil {
		// A non-resident credential carries its credBlob inside its ID, if it fits.
		if credIDLen(m.alg)+len(ext.credBlob) <= a.p.MaxCredentialIDLength {
			sealedBlob = ext.credBlob
		} else {
			ext.credBlob = nil
		}
	}
	meta := credMeta(m.alg, ext.credProtect, ext.hmacSecret, m.rk) | a.thirdPartyPaymentMeta(req.Extensions)
	id, err := a.sealCredentialID(m.rpIDHash[:], meta, secret, sealedBlob)
	if err != nil {
		return nil, err
	}
	c := &credential{id: id, alg: m.alg, credProtect: ext.credProtect, hmacSecret: ext.hmacSecret, blob: ext.credBlob}
	var largeBlobKey []byte
	if m.rk {
		sc := &store.Credential{
			ID: id, RPID: m.rpID, RPName: truncate(req.RP.Name), UserID: req.User.ID,
			UserName: truncate(req.User.Name), UserDisplayName: truncate(req.User.DisplayName),
			Alg: m.alg, PrivateKey: secret, CredProtect: ext.credProtect, HMACSecret: ext.hmacSecret,
			CredBlob: ext.credBlob,
		}
		if ext.hmacSecret {
			if sc.CredRandomUV, err = a.randomBytes(32); err == nil {
				sc.CredRandomNoUV, err = a.randomBytes(32)
			}
		}
		if err == nil && ext.largeBlobKey {
			largeBlobKey, err = a.randomBytes(32)
			sc.LargeBlobKey = largeBlobKey
		}
		if err != nil {
			return nil, ctap.Errorf(ctap.ErrOther, "%v", err)
		}
		if err := a.st.PutResident(sc); err != nil {
			if errors.Is(err, store.ErrInvalid) {
				return nil, ctap.Errorf(ctap.ErrInvalidLength, "credential refused by store: %v", err)
			}
			return nil, ctap.Errorf(ctap.ErrOther, "storing credential: %v", err)
		}
		c.resident = sc
		defer func() { clear(sc.CredRandomUV); clear(sc.CredRandomNoUV) }()
	}
	exts := map[string]any{}
	if ext.credProtect != 0 {
		exts[extCredProtect] = ext.credProtect
	}
	if ext.hmacSecret {
		exts[extHMACSecret] = true
	}
	if hs != nil {
		out, err := a.hmacSecretOutput(hs, c, m.uv)
		if err != nil {
			return nil, err
		}
		exts[extHMACSecretMC] = out
	}
	if ext.credBlobAsked {
		exts[extCredBlob] = ext.credBlob != nil
	}
	if ext.minPINLength {
		if n, ok := minPINLengthFor(m.live, m.rpID); ok {
			exts[extMinPINLength] = n
		}
	}
	ad, err := a.newAuthData(m.rpIDHash, exts)
	if err != nil {
		return nil, err
	}
	ad.Flags = ctap.FlagUP
	ad.Attested = &ctap.AttestedCredential{AAGUID: a.p.AAGUID, CredentialID: id, PublicKey: coseKey}
	if m.uv {
		ad.Flags |= ctap.FlagUV
	}
	authData := ad.Marshal()
	format, stmt, err := a.attest(authData, req.ClientDataHash, m.alg, secret, m.ep)
	if err != nil {
		return nil, err
	}
	resp := &ctap.MakeCredentialResponse{Fmt: format, AuthData: authData, AttStmt: stmt, LargeBlobKey: largeBlobKey}
	if m.ep {
		resp.EpAtt = ctap.Bool(true)
	}
	return resp, nil
}

// truncate cuts s to maxStoredString bytes without splitting a character.
func truncate(s string) string {
	if len(s) <= maxStoredString {
		return s
	}
	s = s[:maxStoredString]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
