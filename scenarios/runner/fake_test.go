package runner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// fakeTarget is a tiny host that speaks real CTAP to the key, enough to test the runner apart
// from the Windows model: register, lock-screen sign-in (first credential wins), replug, wait,
// reset. Accounts live on the key only, so hosts on one key share them without a tenant.
type fakeTarget struct{}

func (fakeTarget) Name() string { return "fake" }

func (fakeTarget) NewHost(_ context.Context, cfg host.Config, key host.Key) (host.Host, error) {
	return &fakeHost{cfg: cfg, key: key}, nil
}

type fakeHost struct {
	cfg host.Config
	key host.Key
}

func (h *fakeHost) Close() error { return nil }

func (h *fakeHost) Do(ctx context.Context, a host.Action) (result.Outcome, []string, error) {
	if a.Name == host.ActLockScreenSignIn && h.cfg.Version.Rank < 3 {
		return result.Outcome{Kind: host.KindNotOffered, Code: host.CodeVersionUnsupported}, []string{"fake gate"}, nil
	}
	switch a.Name {
	case host.ActReplug:
		return done(), nil, h.key.Replug(ctx)
	case host.ActWait:
		s, _ := strconv.Atoi(a.Args["seconds"])
		h.key.(host.Clock).Advance(time.Duration(s) * time.Second)
		return done(), nil, nil
	}
	c, err := h.key.Client(ctx, host.ClientOptions{})
	if err != nil {
		return result.Outcome{}, nil, err
	}
	info, err := c.GetInfo(ctx)
	if err != nil {
		return result.Outcome{}, nil, err
	}
	switch a.Name {
	case host.ActSetPIN:
		return outcome(c.SetPIN(ctx, a.NewPIN), done())
	case host.ActResetKey:
		return outcome(c.Reset(ctx), done())
	case host.ActRegister:
		if !info.HasExtension("hmac-secret") {
			return result.Outcome{Kind: host.KindError, Code: host.CodeNoHMACSecret}, nil, nil
		}
		if set, ok := info.Options["clientPin"]; ok && !set {
			if err := c.SetPIN(ctx, a.PIN); err != nil {
				return outcome(err, result.Outcome{})
			}
		}
		tok, err := c.GetPINToken(ctx, a.PIN, ctap.PermMakeCredential, "login.microsoft.com")
		if err != nil {
			return outcome(err, result.Outcome{})
		}
		cdh := sha256.Sum256([]byte("register " + a.Account))
		yes := true
		_, err = c.MakeCredential(ctx, &ctap.MakeCredentialRequest{
			ClientDataHash:    cdh[:],
			RP:                &ctap.RPEntity{ID: "login.microsoft.com"},
			User:              &ctap.UserEntity{ID: []byte(a.Account), Name: a.Account},
			PubKeyCredParams:  []ctap.CredentialParam{{Type: "public-key", Alg: &es256}},
			Options:           &ctap.Options{RK: &yes},
			PinUvAuthParam:    tok.Auth(cdh[:]),
			PinUvAuthProtocol: tok.ProtocolParam(),
		})
		return outcome(err, result.Outcome{Kind: host.KindRegistered, Account: a.Account})
	case host.ActLockScreenSignIn:
		tok, err := c.GetPINToken(ctx, a.PIN, ctap.PermGetAssertion, "login.microsoft.com")
		if err != nil {
			return outcome(err, result.Outcome{})
		}
		cdh := sha256.Sum256([]byte("sign in"))
		res, err := c.GetAssertion(ctx, &ctap.GetAssertionRequest{
			RPID: "login.microsoft.com", ClientDataHash: cdh[:],
			PinUvAuthParam: tok.Auth(cdh[:]), PinUvAuthProtocol: tok.ProtocolParam(),
		})
		if err != nil || res.User == nil {
			return outcome(err, result.Outcome{})
		}
		return result.Outcome{Kind: host.KindSignedIn, Account: string(res.User.ID)}, nil, nil
	}
	return result.Outcome{}, nil, fmt.Errorf("fake: no action %s", a.Name)
}

var es256 int64 = -7

func done() result.Outcome { return result.Outcome{Kind: host.KindDone} }

// outcome maps a key error to the vocabulary.
func outcome(err error, ok result.Outcome) (result.Outcome, []string, error) {
	var st ctap.Status
	switch {
	case err == nil:
		return ok, nil, nil
	case errors.Is(err, ctap.ErrPINInvalid):
		return result.Outcome{Kind: host.KindError, Code: host.CodePINInvalid}, nil, nil
	case errors.Is(err, ctap.ErrNotAllowed):
		return result.Outcome{Kind: host.KindError, Code: host.CodeResetNotAllowed}, nil, nil
	case errors.Is(err, ctap.ErrKeyStoreFull):
		return result.Outcome{Kind: host.KindError, Code: host.CodeKeyStoreFull}, nil, nil
	case errors.As(err, &st):
		return result.Outcome{Kind: host.KindError, Code: host.CodeKeyError, Reason: st.String()}, nil, nil
	}
	return result.Outcome{}, nil, err
}
