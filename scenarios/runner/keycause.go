package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// diagnosis explains the failures of a run on a key other than the catalog's own (a persona
// override, a fault, an external key). A case is blamed on the key when it passes with the
// scenario's own key on the same target (the baseline); the cause names every difference of the
// key that the case depends on: what the failing step's outcome says, the capabilities its getInfo
// lacks, and the behaviour the probes found (credential order, hmac-secret across power cycles,
// other sites' credentials, the reset window). One diagnosis serves every case of a run.
type diagnosis struct {
	opts     Options
	base     KeyFactory                // the scenarios' own personas, in process, for baselines
	baseline map[string]result.Verdict // Options.Baseline by "id@version"

	probeOnce sync.Once
	traits    keyTraits
}

func newDiagnosis(opts Options) *diagnosis {
	d := &diagnosis{opts: opts, base: InProcess(nil)}
	if opts.Baseline != nil {
		d.baseline = map[string]result.Verdict{}
		for _, c := range opts.Baseline.Cases {
			d.baseline[c.ID+"@"+c.Version] = c.Verdict
		}
	}
	return d
}

// ownKeyPasses reports whether case c passes with the scenario's own key: from the baseline run
// when there is one, else by running it.
func (d *diagnosis) ownKeyPasses(ctx context.Context, c catalog.Case) bool {
	if v, ok := d.baseline[c.ID+"@"+c.Version.Name]; ok {
		return v == result.Pass
	}
	base := d.opts
	base.Keys, base.WrapConn = d.base, nil // the baseline is not the run's: no trace of it
	return runCase(ctx, c, base, nil).Verdict == result.Pass
}

func (d *diagnosis) close() { _ = d.base.Close() }

// judge turns a failed case into key-incompatible with its causes when the scenario's own key
// passes it; otherwise the failure is the host's or the catalog's and stays a regression.
func (d *diagnosis) judge(ctx context.Context, c catalog.Case, key Key, rc *result.Case) {
	if rc.Verdict == result.Pass || ctx.Err() != nil {
		return
	}
	if s, ok := key.(interface{ SkipReason() string }); ok && s.SkipReason() != "" {
		return // the case is skipped, not judged
	}
	if !d.ownKeyPasses(ctx, c) {
		return
	}
	causes := d.causes(ctx, c, key, rc)
	if len(causes) == 0 {
		causes = []string{genericCause(c, rc)}
	}
	rc.Verdict, rc.KeyCause = result.KeyIncompatible, strings.Join(causes, "; ")
}

// genericCause says where the key departs from the scenario's own when nothing more specific is
// known.
func genericCause(c catalog.Case, rc *result.Case) string {
	who := "default"
	if c.Key.Persona != nil {
		who = c.Key.Persona.Name
	}
	i, s := failing(rc)
	if s == nil {
		return fmt.Sprintf("the case passes with the scenario's own key (persona %s) and not with this one: %s", who, rc.Error)
	}
	return fmt.Sprintf("the case passes with the scenario's own key (persona %s); with this key step %d (%s) gives %s instead of %s",
		who, i+1, s.Action, s.Observed, s.Expected)
}

func failing(rc *result.Case) (int, *result.Step) {
	for i, s := range rc.Steps {
		if s.Verdict != result.Pass {
			return i, s
		}
	}
	return -1, nil
}

// causes lists what explains rc on key, most direct first, without repeats.
func (d *diagnosis) causes(ctx context.Context, c catalog.Case, key Key, rc *result.Case) []string {
	info, err := keyInfo(ctx, key)
	if err != nil {
		if ctap1Only(err) {
			return []string{"the key speaks CTAP1/U2F only: getInfo (CTAPHID_CBOR) is an unknown command, and Windows sign-in needs CTAP2 (resident keys, PIN, hmac-secret)"}
		}
		info = nil
	}
	var out []string
	if _, s := failing(rc); s != nil {
		if why := outcomeCause(s, info); why != "" {
			out = append(out, why)
		}
	}
	if info != nil {
		out = append(out, missing(caseNeeds(c), c.Key.Persona, info)...)
	}
	if shapeOf(c).any() { // probing a slow external key takes a while: only when it can tell
		out = append(out, d.probed(ctx).relevant(c)...)
	}
	var uniq []string
	for _, s := range out {
		if !slices.Contains(uniq, s) {
			uniq = append(uniq, s)
		}
	}
	return uniq
}

// probed runs the behaviour probes once per run, on a fresh key of the run's kind.
func (d *diagnosis) probed(ctx context.Context) keyTraits {
	d.probeOnce.Do(func() {
		k, err := d.opts.Keys.Open(ctx, nil)
		if err != nil {
			return
		}
		defer k.Close()
		d.traits = probeKey(ctx, k)
	})
	return d.traits
}

func ctap1Only(err error) bool {
	var st ctap.Status
	return (errors.As(err, &st) && st == ctap.ErrInvalidCommand) || errors.Is(err, ctaphid.ErrInvalidCmd)
}

func keyInfo(ctx context.Context, key Key) (*ctap.GetInfoResponse, error) {
	cl, err := key.Client(ctx, host.ClientOptions{})
	if err != nil {
		return nil, err
	}
	return cl.GetInfo(ctx)
}

// outcomeCause reads the cause off the failing step's outcome, where the outcome names one.
func outcomeCause(s *result.Step, info *ctap.GetInfoResponse) string {
	o := s.Observed
	switch o.Code {
	case host.CodeNoHMACSecret:
		return "no hmac-secret extension in getInfo (Windows needs it for the offline sign-in secret)"
	case host.CodeNoResidentKeys:
		return `no resident keys (getInfo option "rk" is not true)`
	case host.CodeNoUserVerification:
		return "no user verification (neither clientPin nor built-in uv in getInfo)"
	case host.CodeKeyStoreFull:
		if info != nil && info.RemainingDiscoverableCredentials != nil {
			return fmt.Sprintf("resident credential store full (getInfo remainingDiscoverableCredentials %d)", *info.RemainingDiscoverableCredentials)
		}
		return "resident credential store full"
	case host.CodePINPolicy:
		if info != nil && info.MinPINLength > 0 {
			return fmt.Sprintf("the key refuses the case's PIN: minimum PIN length %d (getInfo minPINLength)", info.MinPINLength)
		}
		return "the key refuses the case's PIN (PIN policy)"
	case host.CodeAttestationRejected:
		return "attestation refused by a tenant that enforces attestation (it needs packed attestation with a certificate chain to a FIDO MDS root): " + o.Reason
	case host.CodeTimeout:
		if strings.Contains(o.Reason, "Windows gives up") {
			return "the key stays silent longer than Windows waits: " + o.Reason
		}
		return "the key timed out waiting for the user: " + o.Reason
	case host.CodeUserCancelled:
		return "the key reported that the user declined: " + o.Reason
	case host.CodeOfflineSecretMismatch:
		return "the key's hmac-secret output differs from the one Windows cached online, so the offline sign-in cache does not open"
	case host.CodePINInvalid:
		if strings.Contains(o.Reason, "fresh PIN token") {
			return "the key refuses a request Windows made with a fresh PIN token: " + o.Reason
		}
	case host.CodeResetFailed:
		return "the key refuses authenticatorReset: " + o.Reason
	case host.CodeKeyError:
		if o.Reason != "" {
			return "the key answered with an error: " + o.Reason
		}
	}
	return ""
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
	featAlg = feature{"an algorithm Entra asks for (ES256 -7 or RS256 -257 in getInfo algorithms)",
		func(p *persona.Persona) bool {
			return slices.Contains(p.Algorithms, -7) || slices.Contains(p.Algorithms, -257)
		},
		func(i *ctap.GetInfoResponse) bool {
			return slices.ContainsFunc(i.Algorithms, func(a ctap.AlgorithmParam) bool { return a.Alg == -7 || a.Alg == -257 })
		}}
	featBio = feature{`fingerprint enrolment (option "bioEnroll" or "userVerificationMgmtPreview")`,
		func(p *persona.Persona) bool { return p.BuiltInUV },
		func(i *ctap.GetInfoResponse) bool {
			_, a := i.Options["bioEnroll"]
			_, b := i.Options["userVerificationMgmtPreview"]
			return a || b
		}}
)

// caseNeeds lists the capabilities a case relies on: a PIN and resident keys for its accounts,
// hmac-secret for the sign-ins, an Entra algorithm for its registrations, a fingerprint sensor for
// its enrolments.
func caseNeeds(c catalog.Case) []feature {
	fs := []feature{featRK, featPIN, featProto, featHMAC}
	registers := len(c.Key.Accounts) > 0
	for _, st := range c.Steps {
		switch st.Action.Name {
		case host.ActRegister:
			registers = true
		case host.ActEnrollFingerprint:
			fs = append(fs, featBio)
		}
	}
	if registers {
		fs = append(fs, featAlg)
	}
	return fs
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
