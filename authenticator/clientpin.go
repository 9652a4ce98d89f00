package authenticator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"strings"
	"unicode/utf8"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// PIN policy (CTAP 2.1 §6.5.2.2, §6.5.5).
const (
	maxPINRetries      = store.DefaultPINRetries // the persistent counter's maximum
	maxPINFailsPerBoot = 3                       // consecutive mismatches before a power cycle is needed
	minPINFloor        = 4                       // no minimum PIN length is ever below four code points
	// definedPermissions are the CTAP 2.1 permission bits; undefined ones are ignored (§6.5.5.7).
	definedPermissions = ctap.PermMakeCredential | ctap.PermGetAssertion | ctap.PermCredentialManagement |
		ctap.PermBioEnrollment | ctap.PermLargeBlobWrite | ctap.PermAuthenticatorConfig
)

// pinCall is a decoded clientPIN request with its platform key already parsed, so that a
// keyAgreement that is not even a CBOR map is refused up front, as keys that parse the whole
// request first do, while a well-formed but unusable key fails only at decapsulation.
type pinCall struct {
	*ctap.ClientPINRequest
	peer    cose.Key
	peerErr error
}

// clientPIN is authenticatorClientPIN (CTAP 2.1 §6.5): the PIN subcommands, and the built-in UV
// ones on a key with a fingerprint sensor.
func (a *Authenticator) clientPIN(ctx context.Context, r *request) (any, error) {
	if !a.p.ClientPIN && !a.p.BuiltInUV {
		return nil, ctap.Errorf(ctap.ErrInvalidCommand, "persona %s has neither clientPin nor built-in UV", a.p.Name)
	}
	req, err := ctap.DecodeClientPIN(r.params)
	if err != nil {
		return nil, err
	}
	c := &pinCall{ClientPINRequest: req}
	if len(req.KeyAgreement) > 0 {
		c.peer, c.peerErr = cose.Unmarshal(req.KeyAgreement)
		if s := ctap.StatusOf(c.peerErr); s == ctap.ErrInvalidCBOR || s == ctap.ErrCBORUnexpectedType {
			return nil, c.peerErr
		}
	}
	pinSub := a.p.ClientPIN
	tokenSub := a.p.PinUvAuthToken
	switch *req.SubCommand {
	case ctap.PINGetRetries:
		if pinSub {
			return a.pinGetRetries()
		}
	case ctap.PINGetKeyAgreement:
		return a.pinGetKeyAgreement(c)
	case ctap.PINSetPIN:
		if pinSub {
			return a.pinSetPIN(c)
		}
	case ctap.PINChangePIN:
		if pinSub {
			return a.pinChangePIN(c)
		}
	case ctap.PINGetPinToken:
		if pinSub {
			return a.pinGetPinToken(c)
		}
	case ctap.PINGetPinUvAuthTokenUsingPinWithPerms:
		if pinSub && tokenSub {
			return a.pinGetTokenWithPerms(c)
		}
	case ctap.PINGetPinUvAuthTokenUsingUvWithPerms:
		if a.p.BuiltInUV && tokenSub {
			return a.uvGetTokenWithPerms(ctx, r, c)
		}
	case ctap.PINGetUVRetries:
		if a.p.BuiltInUV {
			return a.uvGetRetries()
		}
	}
	return nil, ctap.Errorf(ctap.ErrInvalidSubcommand, "clientPIN subcommand 0x%02x not offered", *req.SubCommand)
}

// PINRetries returns the persistent PIN retry counter.
func (a *Authenticator) PINRetries() (int, error) {
	pin, err := a.st.PIN()
	if err != nil {
		return 0, err
	}
	return pin.Retries, nil
}

// PINSet reports whether a PIN is set (false when the state cannot be read).
func (a *Authenticator) PINSet() bool {
	pin, err := a.st.PIN()
	return err == nil && pin.Set
}

func (a *Authenticator) loadPIN() (store.PIN, error) {
	pin, err := a.st.PIN()
	if err != nil {
		return store.PIN{}, ctap.Errorf(ctap.ErrOther, "reading PIN state: %v", err)
	}
	return pin, nil
}

func (a *Authenticator) savePIN(pin store.PIN) error {
	if err := a.st.PutPIN(pin); err != nil {
		return ctap.Errorf(ctap.ErrOther, "writing PIN state: %v", err)
	}
	return nil
}

// effectiveMinPINLength is the minimum PIN length in code points: the authenticatorConfig
// setting when one was made, else the persona's, never below four.
func (a *Authenticator) effectiveMinPINLength() (int, error) {
	s, err := a.st.Settings()
	if err != nil {
		return 0, ctap.Errorf(ctap.ErrOther, "reading settings: %v", err)
	}
	n := s.MinPINLength
	if n == 0 {
		n = a.p.MinPINLength
	}
	return max(n, minPINFloor), nil
}

func (a *Authenticator) pinGetRetries() (any, error) {
	pin, err := a.loadPIN()
	if err != nil {
		return nil, err
	}
	if !pin.Set && !a.p.Quirks.PINRetriesWithoutPIN {
		// What current keys answer (YubiKey 5.x; python-fido2 2.x's tests/device/test_clientpin.py
		// expects it after a reset); CTAP 2.1 §6.5.5.2 is silent on a key without a PIN.
		return nil, ctap.Errorf(ctap.ErrPINNotSet, "getPINRetries: no PIN set")
	}
	resp := &ctap.ClientPINResponse{PINRetries: ctap.Uint(uint64(pin.Retries))}
	if a.p.Has(ctap.VersionFIDO21) { // powerCycleState is new in 2.1; a 2.0 key never sends it
		a.mu.Lock()
		blocked := a.pinFailsInBoot >= maxPINFailsPerBoot
		a.mu.Unlock()
		resp.PowerCycleState = &blocked
	}
	return resp, nil
}

func (a *Authenticator) pinGetKeyAgreement(c *pinCall) (any, error) {
	p, err := a.protocol(c.PinUvAuthProtocol)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	ka := a.keyAgreement[p.Version()]
	a.mu.Unlock()
	if ka == nil {
		return nil, ctap.Errorf(ctap.ErrOther, "no key agreement key for protocol %d", p.Version())
	}
	raw, err := ka.PublicCOSE().Marshal()
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "encoding key agreement key: %v", err)
	}
	return &ctap.ClientPINResponse{KeyAgreement: raw}, nil
}

// decapsulate derives the shared secret with the platform's key. Callers hold a.mu.
func (a *Authenticator) decapsulate(p pinuv.Protocol, c *pinCall) ([]byte, error) {
	if c.peerErr != nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "keyAgreement: %v", c.peerErr)
	}
	ka := a.keyAgreement[p.Version()]
	if ka == nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "no key agreement key for protocol %d", p.Version())
	}
	shared, err := ka.SharedSecret(p, c.peer)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "decapsulate: %v", err)
	}
	return shared, nil
}

// decryptNewPIN turns newPinEnc into the PIN and checks it against the policy (§6.5.5.5 steps
// 6-10): undecryptable → PIN_AUTH_INVALID, not 64 bytes → INVALID_PARAMETER, too short, too
// long, not UTF-8 or with a zero byte inside → PIN_POLICY_VIOLATION.
func (a *Authenticator) decryptNewPIN(p pinuv.Protocol, shared, newPinEnc []byte) (hash []byte, codePoints int, err error) {
	padded, err := p.Decrypt(shared, newPinEnc)
	if err != nil {
		return nil, 0, ctap.Errorf(ctap.ErrPINAuthInvalid, "newPinEnc does not decrypt")
	}
	defer clear(padded)
	if len(padded) != pinuv.PaddedPINSize {
		return nil, 0, ctap.Errorf(ctap.ErrInvalidParameter, "padded PIN is %d bytes, want %d", len(padded), pinuv.PaddedPINSize)
	}
	pin := padded
	for len(pin) > 0 && pin[len(pin)-1] == 0 {
		pin = pin[:len(pin)-1]
	}
	minLen, err := a.effectiveMinPINLength()
	if err != nil {
		return nil, 0, err
	}
	n := utf8.RuneCount(pin)
	switch {
	case len(pin) > pinuv.MaxPINBytes:
		return nil, 0, ctap.Errorf(ctap.ErrPINPolicyViolation, "PIN longer than %d bytes", pinuv.MaxPINBytes)
	case !utf8.Valid(pin):
		return nil, 0, ctap.Errorf(ctap.ErrPINPolicyViolation, "PIN is not UTF-8")
	case bytes.IndexByte(pin, 0) >= 0:
		return nil, 0, ctap.Errorf(ctap.ErrPINPolicyViolation, "PIN contains a zero byte")
	case n < minLen:
		return nil, 0, ctap.Errorf(ctap.ErrPINPolicyViolation, "PIN shorter than %d code points", minLen)
	}
	if err := a.checkComplexity(pin); err != nil {
		return nil, 0, err
	}
	sum := sha256.Sum256(pin)
	return sum[:pinuv.PINHashSize], n, nil
}

// pinParam is a clientPIN parameter a subcommand may need.
type pinParam int

const (
	needKeyAgreement pinParam = iota
	needPinUvAuthParam
	needNewPinEnc
	needPinHashEnc
	needPermissions
)

var pinParamNames = [...]string{"keyAgreement", "pinUvAuthParam", "newPinEnc", "pinHashEnc", "permissions"}

func (c *pinCall) has(p pinParam) bool {
	switch p {
	case needKeyAgreement:
		return c.KeyAgreement != nil
	case needPinUvAuthParam:
		return c.PinUvAuthParam != nil
	case needNewPinEnc:
		return c.NewPinEnc != nil
	case needPinHashEnc:
		return c.PinHashEnc != nil
	default:
		return c.Permissions != nil
	}
}

// pinProtocol is how every subcommand that uses the PIN/UV auth protocol begins: the parameters it
// needs (pinUvAuthProtocol and need) must all be there, else CTAP2_ERR_MISSING_PARAMETER, and the
// protocol must be one the persona offers.
func (a *Authenticator) pinProtocol(c *pinCall, sub string, need ...pinParam) (pinuv.Protocol, error) {
	missing := c.PinUvAuthProtocol == nil
	names := []string{"pinUvAuthProtocol"}
	for _, p := range need {
		missing = missing || !c.has(p)
		names = append(names, pinParamNames[p])
	}
	if missing {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "%s needs %s", sub, strings.Join(names, ", "))
	}
	return a.protocol(c.PinUvAuthProtocol)
}

func (a *Authenticator) pinSetPIN(c *pinCall) (any, error) {
	p, err := a.pinProtocol(c, "setPIN", needKeyAgreement, needPinUvAuthParam, needNewPinEnc)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pin, err := a.loadPIN()
	if err != nil {
		return nil, err
	}
	if pin.Set { // §6.5.5.5 step 3: the spec's status for "already set"
		return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "a PIN is already set")
	}
	shared, err := a.decapsulate(p, c)
	if err != nil {
		return nil, err
	}
	if !p.Verify(shared, c.NewPinEnc, c.PinUvAuthParam) {
		return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "pinUvAuthParam does not verify newPinEnc")
	}
	hash, n, err := a.decryptNewPIN(p, shared, c.NewPinEnc)
	if err != nil {
		return nil, err
	}
	return nil, a.savePIN(store.PIN{Set: true, Hash: hash, CodePoints: n, Retries: maxPINRetries})
}

// pinAttempt is the PIN comparison shared by changePIN, getPinToken and
// getPinUvAuthTokenUsingPinWithPermissions. The retry counter is decremented and persisted
// before pinHashEnc is even decrypted, so cutting power after the answer is known never saves a
// retry, and a pinHashEnc that does not decrypt to a 16-byte hash is a mismatch like any other
// (§6.5.5.6 steps 6-7, §6.5.5.7.2 steps 8-9: "If an error results, or a mismatch is detected").
// Callers hold a.mu and have checked that a PIN is set and not blocked.
func (a *Authenticator) pinAttempt(p pinuv.Protocol, shared, pinHashEnc []byte, pin *store.PIN) error {
	if a.pinFailsInBoot >= maxPINFailsPerBoot {
		return ctap.Errorf(ctap.ErrPINAuthBlocked, "%d wrong PINs since power-up", a.pinFailsInBoot)
	}
	pin.Retries--
	if err := a.savePIN(*pin); err != nil {
		return err
	}
	guess, err := p.Decrypt(shared, pinHashEnc)
	defer clear(guess)
	if err != nil || len(guess) != pinuv.PINHashSize || subtle.ConstantTimeCompare(guess, pin.Hash) != 1 {
		a.pinFailsInBoot++
		if err := a.regenerateKeyAgreement(); err != nil {
			return ctap.Errorf(ctap.ErrOther, "%v", err)
		}
		switch {
		case pin.Retries == 0:
			return ctap.Errorf(ctap.ErrPINBlocked, "PIN retries exhausted")
		case a.pinFailsInBoot >= maxPINFailsPerBoot:
			return ctap.Errorf(ctap.ErrPINAuthBlocked, "%d wrong PINs since power-up", a.pinFailsInBoot)
		}
		return ctap.Errorf(ctap.ErrPINInvalid, "wrong PIN, %d retries left", pin.Retries)
	}
	pin.Retries = maxPINRetries
	a.pinFailsInBoot = 0
	if err := a.savePIN(*pin); err != nil {
		return err
	}
	// A correct PIN also unblocks the fingerprint sensor, as bio keys do.
	a.uvFailsInBoot = 0
	if a.p.BuiltInUV {
		if err := a.storeUVRetries(maxUVRetries); err != nil {
			return err
		}
	}
	return nil
}

// pinPrecheck loads the PIN state for a subcommand that compares PINs: no PIN →
// PIN_NOT_SET, no retries left → PIN_BLOCKED. Callers hold a.mu.
func (a *Authenticator) pinPrecheck() (store.PIN, error) {
	pin, err := a.loadPIN()
	if err != nil {
		return pin, err
	}
	if !pin.Set {
		return pin, ctap.Errorf(ctap.ErrPINNotSet, "no PIN set")
	}
	if pin.Retries == 0 {
		return pin, ctap.Errorf(ctap.ErrPINBlocked, "PIN retries exhausted")
	}
	return pin, nil
}

// pinSession runs the checks every PIN-consuming subcommand starts with — a PIN is set and not
// blocked — and derives the shared secret from the platform's key. Callers hold a.mu.
func (a *Authenticator) pinSession(p pinuv.Protocol, c *pinCall) (store.PIN, []byte, error) {
	pin, err := a.pinPrecheck()
	if err != nil {
		return pin, nil, err
	}
	shared, err := a.decapsulate(p, c)
	if err != nil {
		return pin, nil, err
	}
	return pin, shared, nil
}

func (a *Authenticator) pinChangePIN(c *pinCall) (any, error) {
	p, err := a.pinProtocol(c, "changePIN", needKeyAgreement, needPinUvAuthParam, needNewPinEnc, needPinHashEnc)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	pin, shared, err := a.pinSession(p, c)
	if err != nil {
		return nil, err
	}
	msg := append(append([]byte{}, c.NewPinEnc...), c.PinHashEnc...)
	if !p.Verify(shared, msg, c.PinUvAuthParam) {
		return nil, ctap.Errorf(ctap.ErrPINAuthInvalid, "pinUvAuthParam does not verify newPinEnc||pinHashEnc")
	}
	if err := a.pinAttempt(p, shared, c.PinHashEnc, &pin); err != nil {
		return nil, err
	}
	hash, n, err := a.decryptNewPIN(p, shared, c.NewPinEnc)
	if err != nil {
		return nil, err
	}
	if pin.ForceChange && subtle.ConstantTimeCompare(hash, pin.Hash) == 1 {
		return nil, ctap.Errorf(ctap.ErrPINPolicyViolation, "forced PIN change to the same PIN")
	}
	if err := a.dropPersistentToken(); err != nil { // before the new PIN: a crash between keeps no old grant
		return nil, err
	}
	if err := a.savePIN(store.PIN{Set: true, Hash: hash, CodePoints: n, Retries: maxPINRetries}); err != nil {
		return nil, err
	}
	a.stopToken()
	return nil, nil
}

// legacyTokenPermissions are the permissions getPinToken grants: mc and ga (§6.5.5.7.1), and for
// keys that also speak FIDO_2_1_PRE the preview commands' cm and be, because platforms written for
// the preview (libfido2's credMgmt and bio over 0x41/0x40) authenticate with such a token.
func (a *Authenticator) legacyTokenPermissions() uint64 {
	perms := uint64(ctap.PermMakeCredential | ctap.PermGetAssertion)
	if a.p.Has(ctap.VersionFIDO21Pre) {
		perms |= ctap.PermCredentialManagement | ctap.PermBioEnrollment
	}
	return perms
}

func (a *Authenticator) pinGetPinToken(c *pinCall) (any, error) {
	p, err := a.pinProtocol(c, "getPinToken", needKeyAgreement, needPinHashEnc)
	if err != nil {
		return nil, err
	}
	if c.Permissions != nil || c.RPID != nil {
		return nil, ctap.Errorf(ctap.ErrInvalidParameter, "getPinToken takes no permissions or rpId")
	}
	// §6.5.5.7.1 step 11 answers a PIN that must be changed with PIN_INVALID, unlike 0x09.
	return a.tokenWithPIN(p, c, a.legacyTokenPermissions(), "", ctap.ErrPINInvalid)
}

// tokenWithPIN is what getPinToken and getPinUvAuthTokenUsingPinWithPermissions share once
// their parameters are checked (§6.5.5.7.1 and §6.5.5.7.2 from step 5): the PIN in pinHashEnc is
// compared, a PIN that must be changed first is refused with forceChange, and a token with perms
// bound to rpID ("" for none) is granted.
func (a *Authenticator) tokenWithPIN(p pinuv.Protocol, c *pinCall, perms uint64, rpID string, forceChange ctap.Status) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	pin, shared, err := a.pinSession(p, c)
	if err != nil {
		return nil, err
	}
	if err := a.pinAttempt(p, shared, c.PinHashEnc, &pin); err != nil {
		return nil, err
	}
	if pin.ForceChange {
		return nil, ctap.Errorf(forceChange, "the PIN must be changed first")
	}
	return a.grantToken(p, shared, perms, rpID, false)
}

// refusedPermissions returns the requested permissions this persona cannot grant
// (CTAP2_ERR_UNAUTHORIZED_PERMISSION, §6.5.5.7.2 step 4 and §6.5.5.7.3 step 4). Through built-in
// UV, be and acfg need the uvBioEnroll and uvAcfg options, which no persona advertises, so a UV
// token never carries them: bio enrollment and configuration stay behind the PIN.
func (a *Authenticator) refusedPermissions(perms uint64, viaUV bool) uint64 {
	p := a.p
	var refused uint64
	if perms&ctap.PermCredentialManagement != 0 && !p.CredMgmt && !p.CredMgmtPre {
		refused |= ctap.PermCredentialManagement
	}
	if perms&ctap.PermBioEnrollment != 0 && (!p.BuiltInUV || viaUV) {
		refused |= ctap.PermBioEnrollment
	}
	if perms&ctap.PermLargeBlobWrite != 0 && !p.LargeBlobs {
		refused |= ctap.PermLargeBlobWrite
	}
	if perms&ctap.PermAuthenticatorConfig != 0 && (!p.Config || viaUV) {
		refused |= ctap.PermAuthenticatorConfig
	}
	return refused
}

// tokenRequest checks the permissions and rpId of subcommands 0x06 and 0x09 (steps 3-4) and
// returns the permissions to grant and the RP ID to bind. mc and ga need the RP ID the
// token will be bound to (§6.5.5.7: "RP ID required" for both).
func (a *Authenticator) tokenRequest(c *pinCall, viaUV bool) (uint64, string, error) {
	perms := *c.Permissions
	if perms == 0 {
		return 0, "", ctap.Errorf(ctap.ErrInvalidParameter, "permissions 0")
	}
	if pcmr, err := a.persistentRequest(perms); pcmr || err != nil {
		return perms, "", err // the persistent token is bound to no RP (ctap22.go)
	}
	if refused := a.refusedPermissions(perms, viaUV); refused != 0 {
		return 0, "", ctap.Errorf(ctap.ErrUnauthorizedPermission, "permissions 0x%02x not offered", refused)
	}
	rpID := ""
	if c.RPID != nil {
		rpID = *c.RPID
	}
	if perms&(ctap.PermMakeCredential|ctap.PermGetAssertion) != 0 && rpID == "" {
		return 0, "", ctap.Errorf(ctap.ErrMissingParameter, "mc and ga permissions need an rpId")
	}
	return perms & definedPermissions, rpID, nil
}

func (a *Authenticator) pinGetTokenWithPerms(c *pinCall) (any, error) {
	p, err := a.pinProtocol(c, "getPinUvAuthTokenUsingPinWithPermissions", needKeyAgreement, needPinHashEnc, needPermissions)
	if err != nil {
		return nil, err
	}
	perms, rpID, err := a.tokenRequest(c, false)
	if err != nil {
		return nil, err
	}
	return a.tokenWithPIN(p, c, perms, rpID, ctap.ErrPINPolicyViolation)
}

// grantToken starts a new pinUvAuthToken and returns it encrypted for the platform. Callers
// hold a.mu.
func (a *Authenticator) grantToken(p pinuv.Protocol, shared []byte, perms uint64, rpID string, userPresent bool) (any, error) {
	if perms == ctap.PermPersistentCredMgmtRO && a.p.PerCredMgmtRO {
		return a.grantPersistentToken(p, shared)
	}
	tok, err := a.issueToken(perms, rpID, true, userPresent)
	if err != nil {
		return nil, err
	}
	enc, err := p.Encrypt(shared, tok)
	if err != nil {
		a.stopToken()
		return nil, ctap.Errorf(ctap.ErrOther, "encrypting token: %v", err)
	}
	return &ctap.ClientPINResponse{PinUvAuthToken: enc}, nil
}
