package authenticator

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// The CTAP 2.2 features a persona may have (persona fields perCredMgmtRO, longTouchForReset,
// transportsForReset, pinComplexityPolicy and the thirdPartyPayment extension), as the built-in
// ctap22 persona does. CTAP 2.2 is the Proposed Standard of 2025-02-28
// (fido-client-to-authenticator-protocol-v2.2-ps-20250228); section numbers below are its.

// Persistent pinUvAuthToken (§6.5.5.7, permission pcmr = 0x40; getInfo option perCredMgmtRO,
// §6.4): a token that only reads credential management (getCredsMetadata, enumerateRPsBegin,
// enumerateCredentialsBegin and their getNext, §6.8) and survives power cycles, so that a
// platform can list the key's passkeys without asking for the PIN each time it is plugged in. It
// is asked for alone (pcmr with any other permission is CTAP2_ERR_UNAUTHORIZED_PERMISSION), is
// independent of the ordinary pinUvAuthToken, and stays the same until the PIN is changed or the
// key is reset, which invalidate it (changePIN calls resetPersistentPinUvAuthToken, §6.5.5.6;
// pico-fido's src/fido/cbor_client_pin.c does the same, and Yubico's SDK documentation lists PIN
// change and factory reset as what invalidates a PPUAT). python-fido2 2.x's
// tests/device/test_credman.py test_read_only_management is the behaviour tested here.
//
// It is never stored: the store keeps only a random nonce (persistentTokenBlob) that says one was
// issued, and the token is HKDF(master secret, nonce, info ‖ PIN hash). A reset (new master
// secret) or a PIN change (new hash, nonce dropped) therefore invalidates it even when the nonce
// survives, as named blobs do a reset.
const (
	persistentTokenBlob = "ctap22/persistent-token-nonce"
	infoPersistentToken = "fidolab persistentPinUvAuthToken v1"

	// metaThirdPartyPayment is the credential ID meta bit of a credential made with the
	// thirdPartyPayment extension (see algorithms.go for the other bits).
	metaThirdPartyPayment = 0x20
	extThirdPartyPayment  = "thirdPartyPayment"

	// longTouch is how long the user holds the key for authenticatorReset on a persona with
	// longTouchForReset (§6.4: "a long touch"; the YubiKey and python-fido2 documentation give
	// about five seconds).
	longTouch = 5 * time.Second
)

// persistentToken returns the persistent pinUvAuthToken; with issue it is created when none is
// in effect, without issue ok is false then.
func (a *Authenticator) persistentToken(issue bool) (tok []byte, ok bool, err error) {
	nonce, err := a.st.Blob(persistentTokenBlob)
	switch {
	case errors.Is(err, store.ErrNotFound):
		nonce, err = nil, nil
	case err != nil:
		return nil, false, ctap.Errorf(ctap.ErrOther, "reading persistent token state: %v", err)
	}
	if len(nonce) != 32 {
		if !issue {
			return nil, false, nil
		}
		if nonce, err = a.randomBytes(32); err != nil {
			return nil, false, ctap.Errorf(ctap.ErrOther, "%v", err)
		}
		if err := a.st.PutBlob(persistentTokenBlob, nonce); err != nil {
			return nil, false, ctap.Errorf(ctap.ErrOther, "storing persistent token state: %v", err)
		}
	}
	pin, err := a.loadPIN()
	if err != nil {
		return nil, false, err
	}
	master, err := a.st.Secrets()
	if err != nil {
		return nil, false, ctap.Errorf(ctap.ErrOther, "reading master secret: %v", err)
	}
	defer clear(master)
	tok, err = hkdf.Key(sha256.New, master, nonce, infoPersistentToken+string(pin.Hash), 32)
	if err != nil {
		return nil, false, ctap.Errorf(ctap.ErrOther, "deriving persistent token: %v", err)
	}
	return tok, true, nil
}

// dropPersistentToken invalidates the persistent token (a PIN change, a reset).
func (a *Authenticator) dropPersistentToken() error {
	if !a.p.PerCredMgmtRO {
		return nil
	}
	if err := a.st.PutBlob(persistentTokenBlob, nil); err != nil {
		return ctap.Errorf(ctap.ErrOther, "invalidating persistent token: %v", err)
	}
	return nil
}

// persistentRequest checks a permissions request that names pcmr: it must name nothing else
// (§6.5.5.7: pcmr is obtained on its own). ok is false for a request without pcmr, or on a
// persona without the feature, where the bit is undefined and ignored.
func (a *Authenticator) persistentRequest(perms uint64) (ok bool, err error) {
	if !a.p.PerCredMgmtRO || perms&ctap.PermPersistentCredMgmtRO == 0 {
		return false, nil
	}
	if perms != ctap.PermPersistentCredMgmtRO {
		return false, ctap.Errorf(ctap.ErrUnauthorizedPermission, "pcmr cannot be combined with other permissions (0x%02x)", perms)
	}
	return true, nil
}

// grantPersistentToken answers a pcmr request with the persistent token, encrypted for the
// platform. The ordinary token is left as it was. Callers hold a.mu.
func (a *Authenticator) grantPersistentToken(p pinuv.Protocol, shared []byte) (any, error) {
	tok, _, err := a.persistentToken(true)
	if err != nil {
		return nil, err
	}
	defer clear(tok)
	enc, err := p.Encrypt(shared, tok)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "encrypting token: %v", err)
	}
	return &ctap.ClientPINResponse{PinUvAuthToken: enc}, nil
}

// cmReadOnly reports the credential management subcommands a pcmr token may authorise.
func cmReadOnly(sub uint64) bool {
	return sub == ctap.CMGetCredsMetadata || sub == ctap.CMEnumerateRPsBegin || sub == ctap.CMEnumerateCredentialsBegin
}

// verifyPersistent checks pinUvAuthParam over msg with the persistent token.
func (a *Authenticator) verifyPersistent(protoV *uint64, param, msg []byte) bool {
	p, err := a.protocol(protoV)
	if err != nil {
		return false
	}
	tok, ok, err := a.persistentToken(false)
	if err != nil || !ok {
		return false
	}
	defer clear(tok)
	return p.Verify(tok, msg, param)
}

// holdForLongTouch keeps the reset waiting while the user holds the key (longTouchForReset): the
// host sees keepalives with UPNEEDED, and a CANCEL ends the reset without wiping anything.
func (a *Authenticator) holdForLongTouch(ctx context.Context, r *request) error {
	if !a.p.LongTouchForReset {
		return nil
	}
	r.waitingForUser(true)
	defer r.waitingForUser(false)
	if err := a.clock.Sleep(ctx, longTouch); err != nil {
		return ctap.Errorf(ctap.ErrKeepaliveCancel, "cancelled during the long touch")
	}
	return nil
}

// commonPINs are PINs a complexity policy refuses as common (a sample: YubiKey firmware 5.7
// refuses its own, longer list of "non-trivial PINs such as 11111111, password, or 12345678").
var commonPINs = []string{
	"password", "passw0rd", "qwerty", "qwertyui", "asdfgh", "zxcvbn", "letmein", "iloveyou",
	"abc123", "1q2w3e4r", "123123", "123321", "111222", "112233", "121212", "123654", "147258",
	"159753", "696969", "11223344", "12341234",
}

// trivialPIN says why pin fails the PIN complexity policy (pinComplexityPolicy, §6.4 member
// 0x1B), or "" when it passes. The policy follows what Yubico documents for firmware 5.7, which
// takes it from NIST SP 800-63B §5.1.1.2: no repetitive or sequential characters, nothing on a
// list of commonly used values.
func trivialPIN(pin []byte) string {
	runes := []rune(string(pin))
	distinct := map[rune]bool{}
	for _, r := range runes {
		distinct[r] = true
	}
	if len(distinct) < 2 {
		return "one character repeated"
	}
	up, down := true, true
	for i := 1; i < len(runes); i++ {
		up = up && runes[i] == runes[i-1]+1
		down = down && runes[i] == runes[i-1]-1
	}
	if up || down {
		return "a sequence"
	}
	lower := strings.ToLower(string(pin))
	for _, c := range commonPINs {
		if lower == c {
			return "a commonly used PIN"
		}
	}
	return ""
}

// checkComplexity applies the persona's PIN complexity policy to a new PIN.
func (a *Authenticator) checkComplexity(pin []byte) error {
	if !a.p.PinComplexityPolicy || !utf8.Valid(pin) {
		return nil
	}
	if why := trivialPIN(pin); why != "" {
		return ctap.Errorf(ctap.ErrPINPolicyViolation, "PIN complexity policy: %s", why)
	}
	return nil
}

// thirdPartyPaymentMeta is the credential ID meta bit for a makeCredential that asked for the
// thirdPartyPayment extension (CTAP 2.2 thirdPartyPayment extension: the credential may be used
// by another origin for Secure Payment Confirmation).
func (a *Authenticator) thirdPartyPaymentMeta(in *ctap.MakeCredentialExtensions) byte {
	if in != nil && in.ThirdPartyPayment != nil && *in.ThirdPartyPayment && a.p.HasExtension(extThirdPartyPayment) {
		return metaThirdPartyPayment
	}
	return 0
}

// wantsThirdPartyPayment reports a getAssertion that asks for the thirdPartyPayment output.
func (a *Authenticator) wantsThirdPartyPayment(in *ctap.GetAssertionExtensions) bool {
	return in != nil && in.ThirdPartyPayment != nil && *in.ThirdPartyPayment && a.p.HasExtension(extThirdPartyPayment)
}

// isThirdPartyPayment reports the flag of a credential from its ID (resident and not).
func isThirdPartyPayment(id []byte) bool {
	return len(id) > 1 && id[0] == credIDVersion && id[1]&metaThirdPartyPayment != 0
}
