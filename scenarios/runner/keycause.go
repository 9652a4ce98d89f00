package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// keyCause explains a failed case by the key under test, or returns "" when the key does not
// explain it (then it is a regression). It compares what the key advertises in getInfo with what
// the case needs — the capabilities of the scenario's own persona that the failing step uses —
// and recognises the multi-account ordering quirk.
func keyCause(ctx context.Context, c catalog.Case, key Key, rc *result.Case) string {
	var failed *result.Step
	for _, s := range rc.Steps {
		if s.Verdict != result.Pass {
			failed = s
			break
		}
	}
	if failed == nil {
		return ""
	}
	info, err := keyInfo(ctx, key)
	if err != nil {
		return ""
	}
	var causes []string
	switch failed.Observed.Code {
	case host.CodeNoHMACSecret:
		causes = append(causes, "no hmac-secret extension in getInfo (Windows needs it for the offline sign-in secret)")
	case host.CodeNoResidentKeys:
		causes = append(causes, `no resident keys (getInfo option "rk" is not true)`)
	case host.CodeNoUserVerification:
		causes = append(causes, "no user verification (neither clientPin nor built-in uv in getInfo)")
	case host.CodeKeyStoreFull:
		causes = append(causes, fmt.Sprintf("resident credential store full (%s)", remaining(info)))
	}
	if len(causes) == 0 {
		causes = missing(needs(failed.Action), c.Key.Persona, info)
	}
	if len(causes) == 0 {
		causes = ordering(failed)
	}
	return strings.Join(causes, "; ")
}

func keyInfo(ctx context.Context, key Key) (*ctap.GetInfoResponse, error) {
	cl, err := key.Client(ctx, nil)
	if err != nil {
		return nil, err
	}
	return cl.GetInfo(ctx)
}

func remaining(info *ctap.GetInfoResponse) string {
	if info.RemainingDiscoverableCredentials != nil {
		return fmt.Sprintf("getInfo remainingDiscoverableCredentials %d", *info.RemainingDiscoverableCredentials)
	}
	return "the key does not report its remaining capacity"
}

// feature is one capability a case may need, checked against the scenario's persona (does the
// document's key have it?) and the key's getInfo (does the key under test?).
type feature struct {
	name   string
	inRef  func(*persona.Persona) bool
	inInfo func(*ctap.GetInfoResponse) bool
}

var (
	featHMAC = feature{"hmac-secret (offline sign-in secret)",
		func(p *persona.Persona) bool { return p.HasExtension("hmac-secret") },
		func(i *ctap.GetInfoResponse) bool { return i.HasExtension("hmac-secret") }}
	featRK = feature{`resident keys (option "rk")`,
		func(p *persona.Persona) bool { return p.ResidentKeys },
		func(i *ctap.GetInfoResponse) bool { return i.Options["rk"] }}
	featPIN = feature{`clientPin (option "clientPin")`,
		func(p *persona.Persona) bool { return p.ClientPIN },
		func(i *ctap.GetInfoResponse) bool { _, ok := i.Options["clientPin"]; return ok }}
	featProto = feature{"a PIN/UV auth protocol Windows speaks (1 or 2)",
		func(p *persona.Persona) bool { return len(p.PinUvAuthProtocols) > 0 },
		func(i *ctap.GetInfoResponse) bool {
			return slices.Contains(i.PinUvAuthProtocols, 1) || slices.Contains(i.PinUvAuthProtocols, 2)
		}}
	featCTAP21 = feature{"FIDO_2_1 or FIDO_2_1_PRE (Settings › Security Key › Manage)",
		func(p *persona.Persona) bool { return p.Has("FIDO_2_1") || p.Has("FIDO_2_1_PRE") },
		func(i *ctap.GetInfoResponse) bool { return i.HasVersion("FIDO_2_1") || i.HasVersion("FIDO_2_1_PRE") }}
	featBio = feature{`fingerprint enrolment (option "bioEnroll" or "userVerificationMgmtPreview")`,
		func(p *persona.Persona) bool { return p.BuiltInUV },
		func(i *ctap.GetInfoResponse) bool {
			_, a := i.Options["bioEnroll"]
			_, b := i.Options["userVerificationMgmtPreview"]
			return a || b
		}}
	featCTAP2 = feature{"CTAP2 (the key speaks U2F only)",
		func(p *persona.Persona) bool { return p.CTAP2 },
		func(i *ctap.GetInfoResponse) bool { return i.HasVersion("FIDO_2_0") || i.HasVersion("FIDO_2_1") }}
)

// needs lists the features a step's action relies on.
func needs(action string) []feature {
	switch action {
	case host.ActChangePIN:
		return []feature{featCTAP2, featPIN, featProto, featCTAP21}
	case host.ActEnrollFingerprint:
		return []feature{featCTAP2, featPIN, featProto, featCTAP21, featBio}
	case host.ActResetKey:
		return []feature{featCTAP2, featCTAP21}
	case host.ActSetPIN:
		return []feature{featCTAP2, featPIN, featProto}
	}
	return []feature{featCTAP2, featRK, featPIN, featProto, featHMAC}
}

// missing returns the needed features the scenario's persona has and the key lacks.
func missing(fs []feature, ref *persona.Persona, info *ctap.GetInfoResponse) []string {
	var out []string
	for _, f := range fs {
		if (ref == nil || f.inRef(ref)) && !f.inInfo(info) {
			out = append(out, "key lacks "+f.name)
		}
	}
	return out
}

// ordering recognises a key that returns discoverable credentials in another order than newest
// first: Windows signs in with the first one it gets.
func ordering(s *result.Step) []string {
	e, o := s.Expected, s.Observed
	if e.Kind == o.Kind && (e.Kind == host.KindSignedIn || e.Kind == host.KindUnlocked) && e.Account != o.Account && o.Account != "" {
		return []string{fmt.Sprintf("credential ordering: the key returned %s's credential first where the document expects the last added (%s); Windows takes the first and never asks for the next", o.Account, e.Account)}
	}
	return nil
}
