package authenticator

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
)

// Built-in UV policy: a persistent retry counter like the PIN's, and a per-power-up limit of
// consecutive failures after which the sensor refuses until a power cycle or a correct PIN.
const (
	maxUVRetries      = 8
	maxUVFailsPerBoot = 3
	uvRetriesBlob     = "uvRetries"
)

// uvConfigured reports whether built-in UV can run: the persona has a sensor and at least one
// finger is enrolled (getInfo's "uv" option true).
func (a *Authenticator) uvConfigured() (bool, error) {
	if !a.p.BuiltInUV {
		return false, nil
	}
	fps, err := a.st.Fingerprints()
	if err != nil {
		return false, ctap.Errorf(ctap.ErrOther, "reading fingerprints: %v", err)
	}
	return len(fps) > 0, nil
}

// uvRetriesBinding ties the stored counter to the current master secret. Named blobs survive
// authenticatorReset but the master secret does not, so after a reset the old counter no longer
// matches and the sensor starts again from the maximum, as a wiped key does.
func (a *Authenticator) uvRetriesBinding() ([]byte, error) {
	master, err := a.st.Secrets()
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "reading master secret: %v", err)
	}
	h := sha256.New()
	h.Write([]byte("fidolab uvRetries binding"))
	h.Write(master)
	clear(master)
	return h.Sum(nil)[:8], nil
}

// loadUVRetries returns the persistent UV retry counter.
func (a *Authenticator) loadUVRetries() (int, error) {
	b, err := a.st.Blob(uvRetriesBlob)
	if errors.Is(err, store.ErrNotFound) {
		return maxUVRetries, nil
	}
	if err != nil {
		return 0, ctap.Errorf(ctap.ErrOther, "reading UV retries: %v", err)
	}
	bind, err := a.uvRetriesBinding()
	if err != nil {
		return 0, err
	}
	if len(b) != 1+len(bind) || subtle.ConstantTimeCompare(b[1:], bind) != 1 || int(b[0]) > maxUVRetries {
		return maxUVRetries, nil
	}
	return int(b[0]), nil
}

func (a *Authenticator) storeUVRetries(n int) error {
	bind, err := a.uvRetriesBinding()
	if err != nil {
		return err
	}
	if err := a.st.PutBlob(uvRetriesBlob, append([]byte{byte(n)}, bind...)); err != nil {
		return ctap.Errorf(ctap.ErrOther, "writing UV retries: %v", err)
	}
	return nil
}

// performBuiltInUV asks the simulated user for one fingerprint (CTAP 2.1 performBuiltInUv, one
// attempt per call). It returns nil on a match; otherwise an error with the status that
// getPinUvAuthTokenUsingUvWithPermissions answers (§6.5.5.7.3): CTAP2_ERR_NOT_ALLOWED when no
// finger is enrolled, CTAP2_ERR_UV_BLOCKED when the counter is 0 or three attempts failed since
// power-up, CTAP2_ERR_UV_INVALID for a non-matching finger, CTAP2_ERR_USER_ACTION_TIMEOUT and
// CTAP2_ERR_KEEPALIVE_CANCEL when no finger came.
//
// The attempt is paid for (counter decremented and persisted) before the user is asked, as for
// PINs; a timeout or cancel refunds it because no finger was compared.
func (a *Authenticator) performBuiltInUV(ctx context.Context, r *request, rpID string) error {
	ok, err := a.uvConfigured()
	if err != nil {
		return err
	}
	if !ok {
		return ctap.Errorf(ctap.ErrNotAllowed, "built-in UV not configured")
	}
	a.mu.Lock()
	n, err := a.loadUVRetries()
	if err == nil && (n == 0 || a.uvFailsInBoot >= maxUVFailsPerBoot) {
		err = ctap.Errorf(ctap.ErrUVBlocked, "built-in UV blocked")
	}
	if err == nil {
		err = a.storeUVRetries(n - 1)
	}
	a.mu.Unlock()
	if err != nil {
		return err
	}

	asked := a.askUser(ctx, r, user.Verification, rpID)

	a.mu.Lock()
	defer a.mu.Unlock()
	switch ctap.StatusOf(asked) {
	case ctap.StatusOK:
		a.uvFailsInBoot = 0
		return a.storeUVRetries(maxUVRetries)
	case ctap.ErrUVInvalid:
		a.uvFailsInBoot++
		if n-1 == 0 || a.uvFailsInBoot >= maxUVFailsPerBoot {
			return ctap.Errorf(ctap.ErrUVBlocked, "fingerprint did not match; built-in UV now blocked")
		}
		return asked
	default:
		cur, err := a.loadUVRetries()
		if err != nil {
			return err
		}
		if err := a.storeUVRetries(min(cur+1, maxUVRetries)); err != nil {
			return err
		}
		return asked
	}
}

// builtInUV performs built-in user verification for makeCredential's and getAssertion's "uv"
// option (CTAP 2.1 §6.1.2 step 11.2, §6.2.2 step 6.2) and answers with those commands'
// statuses: no sensor or no enrolled finger → CTAP2_ERR_INVALID_OPTION (§6.1.2 step 5: uv
// requested but no enabled built-in method); a failed or blocked UV → CTAP2_ERR_PUAT_REQUIRED
// when a PIN is set (the platform should fall back to it), else CTAP2_ERR_PIN_BLOCKED when the
// UV counter is exhausted, else CTAP2_ERR_OPERATION_DENIED; timeouts and cancels as asked.
func (a *Authenticator) builtInUV(ctx context.Context, r *request, rpID string) error {
	if !a.p.BuiltInUV {
		return ctap.Errorf(ctap.ErrInvalidOption, "no built-in UV")
	}
	err := a.performBuiltInUV(ctx, r, rpID)
	switch s := ctap.StatusOf(err); s {
	case ctap.StatusOK:
		return nil
	case ctap.ErrNotAllowed:
		return ctap.Errorf(ctap.ErrInvalidOption, "built-in UV not configured")
	case ctap.ErrUVInvalid, ctap.ErrUVBlocked:
		if a.PINSet() {
			return ctap.Errorf(ctap.ErrPUATRequired, "built-in UV failed (%v); use the PIN", s)
		}
		// PIN_BLOCKED only for an exhausted counter (§6.1.2 step 11.2.3, §6.2.2 step 6.2.3: "If
		// the uvRetries counter is 0"); three misses since power-up is OPERATION_DENIED.
		a.mu.Lock()
		n, err := a.loadUVRetries()
		a.mu.Unlock()
		if err != nil {
			return err
		}
		if n == 0 {
			return ctap.Errorf(ctap.ErrPINBlocked, "built-in UV blocked")
		}
		return ctap.Errorf(ctap.ErrOperationDenied, "built-in UV failed")
	default:
		return err
	}
}

// uvGetTokenWithPerms is getPinUvAuthTokenUsingUvWithPermissions (§6.5.5.7.3).
func (a *Authenticator) uvGetTokenWithPerms(ctx context.Context, r *request, c *pinCall) (any, error) {
	p, err := a.pinProtocol(c, "getPinUvAuthTokenUsingUvWithPermissions", needKeyAgreement, needPermissions)
	if err != nil {
		return nil, err
	}
	perms, rpID, err := a.tokenRequest(c, true)
	if err != nil {
		return nil, err
	}
	// Derive the secret first so that a bad platform key never costs the user a fingerprint.
	a.mu.Lock()
	shared, err := a.decapsulate(p, c)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := a.performBuiltInUV(ctx, r, rpID); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.grantToken(p, shared, perms, rpID, true)
}

func (a *Authenticator) uvGetRetries() (any, error) {
	a.mu.Lock()
	n, err := a.loadUVRetries()
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &ctap.ClientPINResponse{UVRetries: ctap.Uint(uint64(n))}, nil
}
