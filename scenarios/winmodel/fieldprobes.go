package winmodel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/scenarios/entra"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// The probes of the field reports (docs/scenarios.md, known field failures). The touch probe is
// always on, since its trigger is in the request (a browser registration without user
// verification, with an excludeList, on a key that allows it); the others are turned on per case
// (host.Config.Probes), as the reports describe them on some Windows builds and browsers only.

// TouchProbe is webauthn.dll's key-selection touch: before a registration with user verification
// discouraged and a non-empty excludeList, on a key with makeCredUvNotRqd, Windows sends the
// makeCredential with a zero-length pinUvAuthParam. A key with a PIN answers PIN_INVALID (0x31),
// as CTAP 2.1 §6.1.2 step 1 says; Windows maps it to 0x4DE and the prompt waits until the page
// times out. A key without a PIN answers PIN_NOT_SET (0x35) and the registration goes on.
// Confirmed by a vendor's decoded trace (dani-garcia/vaultwarden #7437; learn.microsoft.com Q&A 5816174).
var TouchProbe = Probe{
	Name: "touch probe (zero-length pinUvAuthParam)", Path: PathBrowserRegister, Stage: BeforeRequest,
	Source: "dani-garcia/vaultwarden #7437, confirmed",
	When: func(p ProbeContext) bool {
		req, ok := p.Request.(*ctap.MakeCredentialRequest)
		if !ok || req.PinUvAuthParam != nil || len(req.ExcludeList) == 0 {
			return false
		}
		if uv := req.Options; uv != nil && uv.UV != nil && *uv.UV {
			return false
		}
		notRqd, _ := p.Info.Option("makeCredUvNotRqd")
		return notRqd
	},
	Run: func(ctx context.Context, p ProbeContext) (*result.Outcome, error) {
		req := p.Request.(*ctap.MakeCredentialRequest)
		proto := uint64(pinProtocolOffered(p.Info))
		err := p.Client.TouchProbe(ctx, req, proto)
		st, isStatus := statusOf(err)
		switch {
		case err == nil:
			p.Note("touch probe: the key made a credential instead of answering the probe")
			o := fail(host.CodeKeyError, "the key answered the zero-length pinUvAuthParam touch probe with a credential (CTAP 2.1 §6.1.2 step 1 wants PIN_NOT_SET or PIN_INVALID)")
			return &o, nil
		case isStatus && st == ctap.ErrPINNotSet:
			p.Note("touch probe answered %v: no PIN, Windows goes on without user verification", st)
			return nil, nil
		case isStatus && st == ctap.ErrOperationDenied:
			// CTAP 2.1 §6.1.2 step 1: no touch came for the probe.
			p.Note("touch probe answered %v: no touch", st)
			o := fail(host.CodeTimeout, "nobody touched the key for the touch probe (the key answered CTAP2_ERR_OPERATION_DENIED)")
			return &o, nil
		case isStatus && st == ctap.ErrPINInvalid:
			p.Note("touch probe answered %v (correct per CTAP 2.1 on a key with a PIN): Windows maps it to 0x4DE and waits", st)
			o := fail(host.CodeTimeout, "the touch probe's PIN_INVALID (0x31) becomes 0x4DE in webauthn.dll and the prompt hangs until the page times out")
			return &o, nil
		}
		o, oerr := outcomeOf("touch probe", err)
		return &o, oerr
	},
}

// PreflightProbe is the browser pre-flight: Chrome and Edge on Windows send the sign-in's
// getAssertion first with up=false and the same PIN token (protocol 2 where the key has it),
// then for real. A key that ends the token after the first, refuses up=false, or answers the
// pre-flight with another credential than it holds is caught. Confirmed by the key's log in
// BryanJacobs/FIDO2Applet #34.
var PreflightProbe = Probe{
	Name: host.ProbeBrowserPreflight, Path: PathBrowserSignIn, Stage: BeforeRequest,
	Source: "BryanJacobs/FIDO2Applet #34, confirmed",
	Run: func(ctx context.Context, p ProbeContext) (*result.Outcome, error) {
		real, ok := p.Request.(*ctap.GetAssertionRequest)
		if !ok {
			return nil, nil
		}
		pre := *real
		opts := ctap.Options{}
		if real.Options != nil {
			opts = *real.Options
		}
		opts.UP = ctap.Bool(false)
		pre.Options = &opts
		res, err := p.Client.GetAssertion(ctx, &pre)
		if st, ok := statusOf(err); ok && st == ctap.ErrNoCredentials {
			p.Note("pre-flight answered %v", st)
			return nil, nil
		}
		if err != nil {
			o, oerr := outcomeOf("pre-flight getAssertion (up=false)", err)
			o.Reason += " (the browser's pre-flight before the real getAssertion)"
			return &o, oerr
		}
		if res.AuthData != nil && res.AuthData.Flags&ctap.FlagUP != 0 {
			o := fail(host.CodeKeyError, "the pre-flight getAssertion with up=false came back with the UP flag: the key asked for a touch the browser did not want")
			return &o, nil
		}
		p.Note("pre-flight (up=false, same PIN token) answered credential %s; the real getAssertion follows", shortID(res.CredentialID))
		return nil, nil
	},
}

// SilentUPProbe is the silent probe at the lock screen: a getAssertion for login.microsoft.com
// with up=false and no PIN before anything else, to learn whether the key holds a credential.
// Inferred: mooltipass/minible PR #168 suggests Windows does it; no Windows trace confirms it.
var SilentUPProbe = Probe{
	Name: host.ProbeSilentUP, Path: PathLogon, Stage: AfterGetInfo,
	Source: "mooltipass/minible PR #168, inferred",
	Run: func(ctx context.Context, p ProbeContext) (*result.Outcome, error) {
		var ch [32]byte
		if _, err := rand.Read(ch[:]); err != nil {
			return nil, err
		}
		cdh := sha256.Sum256(ch[:])
		req := &ctap.GetAssertionRequest{RPID: entra.RPID, ClientDataHash: cdh[:], Options: &ctap.Options{UP: ctap.Bool(false)}}
		res, err := p.Client.GetAssertion(ctx, req)
		if st, ok := statusOf(err); ok && st == ctap.ErrNoCredentials {
			p.Note("silent probe (up=false): %v", st)
			return nil, nil
		}
		if err != nil {
			o, oerr := outcomeOf("silent getAssertion (up=false)", err)
			o.Reason += " (the silent probe before the real sign-in)"
			return &o, oerr
		}
		if res.AuthData != nil && res.AuthData.Flags&ctap.FlagUP != 0 {
			o := fail(host.CodeKeyError, "the silent getAssertion with up=false came back with the UP flag: the key asked for a touch")
			return &o, nil
		}
		p.Note("silent probe (up=false): the key holds a credential for %s", entra.RPID)
		return nil, nil
	},
}

// fieldProbes are the field-report probes for cfg: the touch probe always, the others when the
// case turns them on.
func fieldProbes(cfg host.Config) ([]Probe, error) {
	out := []Probe{TouchProbe}
	for _, name := range cfg.Probes {
		switch name {
		case host.ProbeBrowserPreflight:
			out = append(out, PreflightProbe)
		case host.ProbeSilentUP:
			out = append(out, SilentUPProbe)
		default:
			return nil, fmt.Errorf("winmodel: unknown probe %q (known: %v)", name, host.Probes)
		}
	}
	return slices.Clip(out), nil
}
