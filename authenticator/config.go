package authenticator

import (
	"bytes"
	"context"
	"unicode/utf8"

	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/pinuv"
)

// configAuthPrefix starts the message authenticatorConfig's pinUvAuthParam covers:
// 32×0xff ‖ 0x0d ‖ subCommand ‖ subCommandParams (CTAP 2.1 §6.11).
var configAuthPrefix = append(bytes.Repeat([]byte{0xff}, 32), byte(ctap.CmdConfig))

// config is authenticatorConfig (§6.11). A key protected by a PIN or an enrolled finger,
// or with alwaysUv on, needs a token with the acfg permission; toggleAlwaysUv is exempt from
// the alwaysUv rule so that an unprotected key can switch it off again.
func (a *Authenticator) config(_ context.Context, r *request) (any, error) {
	req, err := ctap.DecodeConfig(r.params)
	if err != nil {
		return nil, err
	}
	sub := *req.SubCommand
	if sub > 0xff {
		return nil, ctap.Errorf(ctap.ErrInvalidSubcommand, "authenticatorConfig subcommand %d", sub)
	}
	settings, err := a.st.Settings()
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "reading settings: %v", err)
	}
	uvOn, err := a.uvConfigured()
	if err != nil {
		return nil, err
	}
	pin, err := a.loadPIN() // fail closed: an unreadable PIN state never skips authentication
	if err != nil {
		return nil, err
	}
	if pin.Set || uvOn || (settings.AlwaysUV && sub != ctap.ConfigToggleAlwaysUV) {
		if req.PinUvAuthParam == nil {
			return nil, ctap.Errorf(ctap.ErrPUATRequired, "authenticatorConfig needs pinUvAuthParam")
		}
		msg := append(append(append([]byte{}, configAuthPrefix...), byte(sub)), req.SubCommandParams...)
		if _, err := a.verifyPinUvAuth(req.PinUvAuthProtocol, req.PinUvAuthParam, msg, ctap.PermAuthenticatorConfig, ""); err != nil {
			return nil, err
		}
	}
	switch sub {
	case ctap.ConfigEnableEnterpriseAttestation:
		if a.p.EnterpriseAtt {
			settings.EnterpriseAttestation = true
			return nil, a.saveSettings(settings)
		}
	case ctap.ConfigToggleAlwaysUV:
		settings.AlwaysUV = !settings.AlwaysUV
		return nil, a.saveSettings(settings)
	case ctap.ConfigSetMinPINLength:
		return nil, a.setMinPINLength(req, settings)
	}
	// vendorPrototype is among these: the key offers no vendor commands.
	return nil, ctap.Errorf(ctap.ErrInvalidSubcommand, "authenticatorConfig subcommand 0x%02x not offered", sub)
}

func (a *Authenticator) saveSettings(s store.Settings) error {
	if err := a.st.PutSettings(s); err != nil {
		return ctap.Errorf(ctap.ErrOther, "writing settings: %v", err)
	}
	return nil
}

// setMinPINLength is §6.11.4. The minimum never decreases; a PIN shorter than the new minimum,
// or forceChangePin, sets forcePINChange. The PIN state is written before the settings so
// that a crash in between leaves at worst a forced change, never a PIN below the minimum
// without one.
func (a *Authenticator) setMinPINLength(req *ctap.ConfigRequest, settings store.Settings) error {
	if len(req.SubCommandParams) == 0 {
		return ctap.Errorf(ctap.ErrMissingParameter, "setMinPINLength needs subCommandParams")
	}
	var params ctap.SetMinPINLengthParams
	if err := ctap.Unmarshal(req.SubCommandParams, &params); err != nil {
		return err
	}
	current, err := a.effectiveMinPINLength()
	if err != nil {
		return err
	}
	newMin := current
	if params.NewMinPINLength != nil {
		if *params.NewMinPINLength > pinuv.MaxPINBytes {
			return ctap.Errorf(ctap.ErrPINPolicyViolation, "minimum PIN length %d exceeds the %d-byte maximum", *params.NewMinPINLength, pinuv.MaxPINBytes)
		}
		newMin = int(*params.NewMinPINLength)
	}
	if params.MinPINLengthRPIDs != nil {
		if !a.p.HasExtension("minPinLength") || len(params.MinPINLengthRPIDs) > a.p.MaxRPIDsForSetMinPINLength {
			return ctap.Errorf(ctap.ErrPINPolicyViolation, "%d minPinLengthRPIDs, at most %d", len(params.MinPINLengthRPIDs), a.p.MaxRPIDsForSetMinPINLength)
		}
		for _, id := range params.MinPINLengthRPIDs {
			if id == "" || len(id) > 255 || !utf8.ValidString(id) {
				return ctap.Errorf(ctap.ErrInvalidParameter, "invalid RP ID in minPinLengthRPIDs")
			}
		}
	}
	if newMin < current {
		return ctap.Errorf(ctap.ErrPINPolicyViolation, "minimum PIN length may not decrease from %d to %d", current, newMin)
	}
	force := params.ForceChangePIN != nil && *params.ForceChangePIN
	a.mu.Lock()
	defer a.mu.Unlock()
	pin, err := a.loadPIN()
	if err != nil {
		return err
	}
	if force && !pin.Set {
		return ctap.Errorf(ctap.ErrPINNotSet, "forceChangePin without a PIN")
	}
	if pin.Set && (force || pin.CodePoints < newMin) && !pin.ForceChange {
		pin.ForceChange = true
		if err := a.savePIN(pin); err != nil {
			return err
		}
	}
	settings.MinPINLength = newMin
	if params.MinPINLengthRPIDs != nil {
		settings.MinPINLengthRPIDs = params.MinPINLengthRPIDs
	}
	return a.saveSettings(settings)
}
