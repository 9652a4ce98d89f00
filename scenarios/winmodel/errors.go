package winmodel

import (
	"context"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/entra"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// statusCodes maps the CTAP statuses Windows turns into a distinct message to outcome codes.
var statusCodes = map[ctap.Status]string{
	ctap.ErrPINInvalid:         host.CodePINInvalid,
	ctap.ErrPINAuthBlocked:     host.CodePINAuthBlocked,
	ctap.ErrPINBlocked:         host.CodePINBlocked,
	ctap.ErrPINNotSet:          host.CodePINRequired,
	ctap.ErrPUATRequired:       host.CodePINRequired,
	ctap.ErrPINPolicyViolation: host.CodePINPolicy,
	ctap.ErrNoCredentials:      host.CodeNoCredentials,
	ctap.ErrKeyStoreFull:       host.CodeKeyStoreFull,
	ctap.ErrOperationDenied:    host.CodeUserCancelled,
	ctap.ErrKeepaliveCancel:    host.CodeUserCancelled,
	ctap.ErrUserActionTimeout:  host.CodeTimeout,
	ctap.ErrActionTimeout:      host.CodeTimeout,
	ctap.ErrUnsupportedOption:  host.CodeKeyError,
}

// outcomeOf turns a failed step into what the user sees: a CTAP status the key answered, a
// refusal by Entra, a timeout, or a key error. Only failures that are not the key's or Entra's
// answer (the key could not be reached at all) stay Go errors.
func outcomeOf(step string, err error) (result.Outcome, error) {
	if code := entra.Code(err); code != "" {
		return fail(code, err.Error()), nil
	}
	var st ctap.Status
	if errors.As(err, &st) {
		code, ok := statusCodes[st]
		if !ok {
			code = host.CodeKeyError
		}
		return fail(code, fmt.Sprintf("%s: key answered %v", step, st)), nil
	}
	var silent *SilenceError
	if errors.As(err, &silent) {
		return fail(host.CodeTimeout, fmt.Sprintf("%s: %v", step, silent)), nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fail(host.CodeTimeout, step+": no answer in time"), nil
	}
	var he *ctaphid.HIDError
	if errors.As(err, &he) {
		return fail(host.CodeKeyError, fmt.Sprintf("%s: %v", step, err)), nil
	}
	if errors.Is(err, client.ErrMalformedResponse) {
		return fail(host.CodeKeyError, fmt.Sprintf("%s: %v", step, err)), nil
	}
	return result.Outcome{}, fmt.Errorf("winmodel: %s: %w", step, err)
}
