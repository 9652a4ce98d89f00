package authenticator

import (
	"context"
	"crypto/sha256"
	"errors"

	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/u2f"
)

// swInternal is SW_UNKNOWN ("no precise diagnosis"), what keys answer for an internal failure.
const swInternal u2f.StatusWord = 0x6F00

// HandleMSG implements ctaphid.Handler: one CTAP1/U2F APDU in, the response APDU out.
func (a *Authenticator) HandleMSG(ctx context.Context, apdu []byte) []byte {
	if !a.p.U2F {
		return u2f.Response(nil, u2f.SWInsNotSupported)
	}
	data, err := a.handleU2F(ctx, apdu)
	sw := u2f.SWNoError
	if err != nil {
		data = nil
		if !errors.As(err, &sw) {
			sw = swInternal
		}
		a.log.Debug("u2f", "sw", sw.String(), "err", err.Error())
	}
	return u2f.Response(data, sw)
}

func (a *Authenticator) handleU2F(ctx context.Context, apdu []byte) ([]byte, error) {
	c, err := u2f.ParseCommand(apdu)
	if err != nil {
		return nil, err
	}
	switch c.INS {
	case u2f.InsVersion:
		if err := u2f.ParseVersionRequest(c); err != nil {
			return nil, err
		}
		return []byte(u2f.Version), nil
	case u2f.InsRegister:
		req, err := u2f.ParseRegisterRequest(c)
		if err != nil {
			return nil, err
		}
		return a.u2fRegister(ctx, req)
	default:
		req, err := u2f.ParseAuthenticateRequest(c)
		if err != nil {
			return nil, err
		}
		return a.u2fAuthenticate(ctx, req)
	}
}

// u2fPresence asks for a touch. Anything but a touch is SW_CONDITIONS_NOT_SATISFIED: a real
// key answers that at once and the host polls until the user touches.
func (a *Authenticator) u2fPresence(ctx context.Context, command string) error {
	ans, err := a.user.Ask(ctx, user.Request{Kind: user.Presence, Command: command, Clock: a.clock})
	if err != nil || ctx.Err() != nil || ans != user.Yes {
		return u2f.SWConditionsNotSatisfied
	}
	return nil
}

func (a *Authenticator) u2fRegister(ctx context.Context, req u2f.RegisterRequest) ([]byte, error) {
	if err := a.u2fPresence(ctx, "U2F_REGISTER"); err != nil {
		return nil, err
	}
	att := a.attestationMaterial()
	if att == nil {
		return nil, errors.New("no attestation certificate")
	}
	secret, coseKey, err := a.newKeyPair(int(cose.AlgES256))
	if err != nil {
		return nil, err
	}
	defer clear(secret)
	key, err := cose.Unmarshal(coseKey)
	if err != nil {
		return nil, err
	}
	point, err := key.Uncompressed()
	if err != nil {
		return nil, err
	}
	kh, err := a.sealCredentialID(req.Application[:], credMeta(int(cose.AlgES256), 0, false, false), secret, nil)
	if err != nil {
		return nil, err
	}
	resp := u2f.RegisterResponse{KeyHandle: kh, Certificate: att.batchCert}
	copy(resp.PublicKey[:], point)
	digest := sha256.Sum256(u2f.RegisterSignedData(req.Application, req.Challenge, kh, resp.PublicKey))
	if resp.Signature, err = a.sig.Sign(att.batchKey, digest[:]); err != nil {
		return nil, err
	}
	return resp.Marshal()
}

func (a *Authenticator) u2fAuthenticate(ctx context.Context, req u2f.AuthenticateRequest) ([]byte, error) {
	c, err := a.findCredential(req.KeyHandle, "", req.Application[:])
	if err != nil {
		return nil, err
	}
	defer c.wipe()
	// U2F can neither verify the user nor sign with EdDSA, so such credentials are not its.
	if c == nil || cose.Algorithm(c.alg) != cose.AlgES256 || c.credProtect == 3 {
		return nil, u2f.SWWrongData
	}
	if req.Control == u2f.ControlCheckOnly {
		return nil, u2f.SWConditionsNotSatisfied // "yes, this key handle is mine"
	}
	var presence byte
	if req.Control == u2f.ControlEnforceUserPresence {
		if err := a.u2fPresence(ctx, "U2F_AUTHENTICATE"); err != nil {
			return nil, err
		}
		presence = u2f.UserPresent
	}
	counter, err := a.st.NextSignCount()
	if err != nil {
		return nil, err
	}
	sig, err := a.sign(c.alg, c.secret, u2f.AuthenticateSignedData(req.Application, presence, counter, req.Challenge))
	if err != nil {
		return nil, err
	}
	return u2f.AuthenticateResponse{UserPresence: presence, Counter: counter, Signature: sig}.Marshal(), nil
}
