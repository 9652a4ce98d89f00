package authenticator

import (
	"context"

	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
)

// reset is authenticatorReset (CTAP 2.1 §6.6): only shortly after power-up and with a touch,
// so that malware cannot wipe a key that has been plugged in for a while.
func (a *Authenticator) reset(ctx context.Context, r *request) (any, error) {
	if err := a.resetRefused(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	since := a.clock.Now().Sub(a.powerUp)
	a.mu.Unlock()
	if since > a.resetWindow() {
		return nil, ctap.Errorf(ctap.ErrNotAllowed, "reset %v after power-up", since)
	}
	if err := a.askUser(ctx, r, user.Presence, ""); err != nil {
		return nil, err
	}
	if err := a.holdForLongTouch(ctx, r); err != nil {
		return nil, err
	}
	if err := a.dropPersistentToken(); err != nil {
		return nil, err
	}
	if err := a.st.Reset(); err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "wiping state: %v", err)
	}
	a.forgetCredentialKeys()
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.token.value)
	a.volatile = volatile{}
	if err := a.regenerateKeyAgreement(); err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "%v", err)
	}
	return nil, nil
}
