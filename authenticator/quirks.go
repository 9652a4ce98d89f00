package authenticator

import (
	"crypto/hmac"
	"crypto/sha256"
	"sort"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
)

// Two persona quirks that reproduce firmware defects, kept here so that the command code reads as
// the spec does: hmacSecretPerBoot and discoverableIgnoresRpId (persona.Quirks). Each is one hook
// called from the code it bends.

// quirkBoot is what the quirks keep per power-up; PowerCycle zeroes it with the rest of volatile.
type quirkBoot struct {
	hmacKey [32]byte // hmacSecretPerBoot: this boot's key over CredRandom
	hmacSet bool
}

// hmacSecretPerBoot applies the hmacSecretPerBoot quirk to a credential's CredRandom, in place:
// it becomes HMAC-SHA-256(boot key, CredRandom) with a key drawn at the first hmac-secret request
// after each power-up, so the outputs stay stable while the key is plugged in and change after
// it was unplugged — as on a key that keeps CredRandom in RAM.
func (a *Authenticator) hmacSecretPerBoot(cr []byte) error {
	if !a.p.Quirks.HMACSecretPerBoot {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	q := &a.quirkBoot
	if !q.hmacSet {
		b, err := a.randomBytes(len(q.hmacKey))
		if err != nil {
			return ctap.Errorf(ctap.ErrOther, "%v", err)
		}
		copy(q.hmacKey[:], b)
		clear(b)
		q.hmacSet = true
	}
	m := hmac.New(sha256.New, q.hmacKey[:])
	m.Write(cr)
	m.Sum(cr[:0])
	return nil
}

// discoverable returns the resident credentials a getAssertion without allowList considers, newest
// first: rpID's, or with the discoverableIgnoresRpId quirk those of every relying party.
func (a *Authenticator) discoverable(rpID string) ([]*store.Credential, error) {
	if !a.p.Quirks.DiscoverableIgnoresRPID {
		return a.st.Resident(rpID)
	}
	rps, err := a.st.ResidentRPs()
	if err != nil {
		return nil, err
	}
	var all []*store.Credential
	for _, rp := range rps {
		cs, err := a.st.Resident(rp.ID)
		if err != nil {
			return nil, err
		}
		all = append(all, cs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Created > all[j].Created })
	return all, nil
}

// The field-report quirks (persona.Quirks): each hook returns the error or change the quirk
// makes, nil or nothing when the quirk is off.

// resetRefused is the resetRefused quirk: authenticatorReset is refused before anything else.
func (a *Authenticator) resetRefused() error {
	if !a.p.Quirks.ResetRefused {
		return nil
	}
	return ctap.Errorf(ctap.ErrOperationDenied, "reset refused by design (resetRefused quirk)")
}

// upFalseRefused is the upFalseRefused quirk: a getAssertion with up=false is an invalid option.
func (a *Authenticator) upFalseRefused(up bool) error {
	if up || !a.p.Quirks.UPFalseRefused {
		return nil
	}
	return ctap.Errorf(ctap.ErrInvalidOption, "up=false refused (upFalseRefused quirk)")
}

// tokenSingleUse is the pinTokenSingleUse quirk, called after a pinUvAuthParam verified: the
// token ends, so the next request with it fails CTAP2_ERR_PIN_AUTH_INVALID.
func (a *Authenticator) tokenSingleUse() {
	if !a.p.Quirks.PINTokenSingleUse {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stopToken()
}

// badSignature is the badSignatureWithHmacSecret quirk: with hmac-secret requested, the signed
// message loses its last byte (the signature is then over the wrong data, as solo1 #228 found).
func (a *Authenticator) badSignature(msg []byte, hmacSecret bool) []byte {
	if !hmacSecret || !a.p.Quirks.BadSignatureWithHMACSecret || len(msg) == 0 {
		return msg
	}
	return msg[:len(msg)-1]
}

// longUserFieldsRefused is the longUserFieldsRefused quirk: a user name or display name over 64
// bytes is refused instead of truncated.
func (a *Authenticator) longUserFieldsRefused(u ctap.UserEntity) error {
	if !a.p.Quirks.LongUserFieldsRefused || (len(u.Name) <= maxStoredString && len(u.DisplayName) <= maxStoredString) {
		return nil
	}
	return ctap.Errorf(ctap.ErrPINAuthInvalid, "user name of %d bytes refused (longUserFieldsRefused quirk)", max(len(u.Name), len(u.DisplayName)))
}
