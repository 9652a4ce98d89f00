package winmodel

import (
	"context"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Path is one of Windows' ways to a key. They send different CTAP sequences: LogonUI's credential
// provider (lock-screen sign-in and unlock) is not the browser's webauthn.dll, and field reports
// show each adding requests of its own before the real one (a touch probe, a pre-flight
// getAssertion). Probes model those extra requests per path.
type Path string

// Paths.
const (
	PathLogon           Path = "logon"            // lock-screen sign-in and unlock (LogonUI, CloudAP)
	PathBrowserSignIn   Path = "browser-sign-in"  // WebAuthn sign-in from a browser (also inside a remote session)
	PathBrowserRegister Path = "browser-register" // WebAuthn registration from a browser (Entra Security info, other sites)
)

// Stage is where on a path a probe runs.
type Stage int

// Stages.
const (
	// AfterGetInfo: the key is open and its getInfo read; nothing else was sent.
	AfterGetInfo Stage = iota
	// BeforeRequest: user verification is done and the real makeCredential or getAssertion is
	// ready in ProbeContext.Request, not yet sent.
	BeforeRequest
)

// Probe is a request Windows sends on a path besides the real one. It may end the operation with
// the outcome the user sees (a hung prompt, an error), or return nil to let it go on.
type Probe struct {
	Name   string // for the step's notes
	Path   Path
	Stage  Stage
	Source string // where the behaviour is reported (reference windows-host.md § …)
	// When, if set, says whether Windows sends the probe at all for this request (its trigger);
	// a probe not sent leaves no note.
	When func(ProbeContext) bool
	Run  func(ctx context.Context, p ProbeContext) (*result.Outcome, error)
}

// ProbeContext is what a probe sees.
type ProbeContext struct {
	Client *client.Client
	Info   *ctap.GetInfoResponse
	// Request is the real request at BeforeRequest: a *ctap.MakeCredentialRequest or a
	// *ctap.GetAssertionRequest, which the probe must not change; nil at AfterGetInfo.
	Request any
	// Note records the probe's decisions in the step's notes.
	Note func(format string, args ...any)
}

// WithProbes adds probes to the model's paths, in the order given.
func WithProbes(probes ...Probe) Option {
	return func(t *Target) { t.probes = append(t.probes, probes...) }
}

// probe runs the probes of path at stage; a non-nil outcome ends the operation.
func (h *Host) probe(ctx context.Context, path Path, stage Stage, c *client.Client, info *ctap.GetInfoResponse, req any, n *notes) (*result.Outcome, error) {
	for _, p := range h.probes {
		if p.Path != path || p.Stage != stage {
			continue
		}
		pc := ProbeContext{Client: c, Info: info, Request: req, Note: n.add}
		if p.When != nil && !p.When(pc) {
			continue
		}
		n.add("probe %s (%s)", p.Name, p.Source)
		o, err := p.Run(ctx, pc)
		if err != nil {
			return nil, fmt.Errorf("winmodel: probe %s: %w", p.Name, err)
		}
		if o != nil {
			return o, nil
		}
	}
	return nil, nil
}
