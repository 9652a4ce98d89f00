package authenticator

import (
	"fmt"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// Token timing (CTAP 2.1 §6.5.2.1): a token not used within the initial usage window stops
// working; a used one lives at most maxTokenLife; the user-present flag lasts userPresentLife.
const (
	initialTokenUse = 30 * time.Second
	maxTokenLife    = 10 * time.Minute
	userPresentLife = 30 * time.Second
)

// pinKeyAgreement holds one key-agreement key per PIN/UV auth protocol the persona offers.
type pinKeyAgreement map[int]*pinuv.KeyAgreement

// pinToken is the single pinUvAuthToken and its state. The token value never leaves this struct
// except in the encrypted clientPIN response.
type pinToken struct {
	value        []byte
	inUse        bool
	perms        uint64
	rpID         string // "" while unbound
	userVerified bool
	userPresent  bool
	issued       time.Time
	used         bool
}

// tokenUse is what verifyPinUvAuth learned about the caller.
type tokenUse struct {
	UserVerified bool
	UserPresent  bool
}

// regenerateKeyAgreement makes fresh key-agreement keys (power-up, and after PIN mismatches as
// the spec requires). Callers hold a.mu.
func (a *Authenticator) regenerateKeyAgreement() error {
	ka := pinKeyAgreement{}
	for _, v := range a.p.PinUvAuthProtocols {
		k, err := pinuv.NewKeyAgreement(a.rand)
		if err != nil {
			return fmt.Errorf("authenticator: key agreement: %w", err)
		}
		ka[v] = k
	}
	a.keyAgreement = ka
	return nil
}

// protocol resolves a pinUvAuthProtocol parameter: missing → CTAP2_ERR_MISSING_PARAMETER, one the
// persona does not offer → CTAP1_ERR_INVALID_PARAMETER.
func (a *Authenticator) protocol(v *uint64) (pinuv.Protocol, error) {
	if v == nil {
		return nil, ctap.Errorf(ctap.ErrMissingParameter, "pinUvAuthProtocol missing")
	}
	for _, have := range a.p.PinUvAuthProtocols {
		if uint64(have) == *v {
			if p, ok := pinuv.ByVersion(have); ok {
				return p, nil
			}
		}
	}
	return nil, ctap.Errorf(ctap.ErrInvalidParameter, "pinUvAuthProtocol %d not supported", *v)
}

// issueToken starts a new pinUvAuthToken (beginUsingPinUvAuthToken) and returns its value.
// Callers hold a.mu.
func (a *Authenticator) issueToken(perms uint64, rpID string, userVerified, userPresent bool) ([]byte, error) {
	v := make([]byte, 32)
	if _, err := a.rand.Read(v); err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "token randomness: %v", err)
	}
	clear(a.token.value)
	a.token = pinToken{value: v, inUse: true, perms: perms, rpID: rpID,
		userVerified: userVerified, userPresent: userPresent, issued: a.clock.Now()}
	return v, nil
}

// tokenValid applies the usage timers. Callers hold a.mu.
func (a *Authenticator) tokenValid() bool {
	t := &a.token
	if !t.inUse {
		return false
	}
	age := a.clock.Now().Sub(t.issued)
	if age > maxTokenLife || (!t.used && age > initialTokenUse) {
		a.stopToken()
		return false
	}
	if age > userPresentLife {
		t.userPresent = false
	}
	return true
}

// stopToken ends the token (stopUsingPinUvAuthToken). Callers hold a.mu.
func (a *Authenticator) stopToken() {
	clear(a.token.value)
	a.token = pinToken{}
}

// verifyPinUvAuth checks pinUvAuthParam over msg with the current token, that the token carries
// permission perm, and its RP binding: a token bound to another RP fails, an unbound one becomes
// bound to rpID when rpID is given. Every failure is CTAP2_ERR_PIN_AUTH_INVALID, as the spec says.
func (a *Authenticator) verifyPinUvAuth(protoV *uint64, param, msg []byte, perm uint64, rpID string) (tokenUse, error) {
	p, err := a.protocol(protoV)
	if err != nil {
		return tokenUse{}, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.tokenValid() {
		return tokenUse{}, ctap.Errorf(ctap.ErrPINAuthInvalid, "no pinUvAuthToken in use")
	}
	if !p.Verify(a.token.value, msg, param) {
		return tokenUse{}, ctap.Errorf(ctap.ErrPINAuthInvalid, "pinUvAuthParam does not verify")
	}
	if a.token.perms&perm == 0 {
		return tokenUse{}, ctap.Errorf(ctap.ErrPINAuthInvalid, "token lacks permission 0x%02x", perm)
	}
	if rpID != "" {
		switch a.token.rpID {
		case "":
			a.token.rpID = rpID
		case rpID:
		default:
			return tokenUse{}, ctap.Errorf(ctap.ErrPINAuthInvalid, "token bound to another RP")
		}
	}
	a.token.used = true
	return tokenUse{UserVerified: a.token.userVerified, UserPresent: a.token.userPresent}, nil
}

// afterTokenUse clears the flags a makeCredential or getAssertion consumed, and every permission
// but largeBlobWrite (CTAP 2.1 §6.1.2 step 20, §6.2.2 step 12).
func (a *Authenticator) afterTokenUse() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.token.userPresent = false
	a.token.userVerified = false
	a.token.perms &= ctap.PermLargeBlobWrite
}

// tokenBoundRP reports the RP ID the current token is bound to ("" when unbound or none).
func (a *Authenticator) tokenBoundRP() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token.rpID
}
