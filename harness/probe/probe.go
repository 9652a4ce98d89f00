// Package probe checks a key — a vendor's real key on hidraw or USB, a served fidolab, an
// emulated persona — against what Windows sign-in needs from a security key, and reads off the
// key what a persona needs to emulate it. Each check says what Windows needs and where that comes
// from, what the key did, and a status; checks that would change what is on the key (reset, a PIN,
// filling it with credentials) run only when the caller allows it, and the report says which were
// skipped and why. docs/probe.md describes the checks.
package probe

import (
	"context"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/keyprofile"
)

// Status is a check's result.
type Status string

// Statuses, worst last.
const (
	Pass Status = "pass" // the key does what Windows needs
	Info Status = "info" // a fact about the key, not a requirement
	Warn Status = "warn" // Windows copes, but some case of the document does not work, or barely
	Fail Status = "fail" // Windows sign-in (or the case named) does not work with this key
	Skip Status = "skip" // not checked: Skipped says why
)

// Check is one requirement and what the key did.
type Check struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Need is what Windows needs, with its source.
	Need   string `json:"need"`
	Status Status `json:"status"`
	// Observed is what the key did, in one line; Details are further lines.
	Observed string   `json:"observed,omitempty"`
	Details  []string `json:"details,omitempty"`
	// Skipped says why a check did not run.
	Skipped string `json:"skipped,omitempty"`
	// Destructive marks a check that changes what is on the key.
	Destructive bool `json:"destructive,omitempty"`
}

// KeyInfo describes the probed key.
type KeyInfo struct {
	Spec         string   `json:"spec"`
	Description  string   `json:"description"`
	AAGUID       string   `json:"aaguid,omitempty"`
	Versions     []string `json:"versions,omitempty"`
	USB          string   `json:"usb,omitempty"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Product      string   `json:"product,omitempty"`
	Device       string   `json:"device,omitempty"`
}

// SchemaVersion is the version of the JSON report; it changes only when a reader of the previous
// version would misread a report.
const SchemaVersion = 1

// Report is a whole probe.
type Report struct {
	SchemaVersion int       `json:"schemaVersion"`
	Tool          string    `json:"tool"`
	Started       time.Time `json:"started"`
	DurationMs    int64     `json:"durationMs"`
	Key           KeyInfo   `json:"key"`
	Destructive   bool      `json:"destructive"`
	// Verdict sums the checks: "compatible", "compatible with warnings", "incompatible"; with
	// skipped checks it says "as far as checked".
	Verdict string  `json:"verdict"`
	Checks  []Check `json:"checks"`
	// Catalog is the whole catalog run on the key, when it was.
	Catalog *CatalogResult `json:"catalog,omitempty"`
	// Left says what the probe left on the key.
	Left string `json:"left,omitempty"`
}

// CatalogResult is the catalog run on the key (filled in by the caller, which owns the runner).
type CatalogResult struct {
	Key             string        `json:"key"`
	Total           int           `json:"total"`
	Passed          int           `json:"passed"`
	Failed          int           `json:"failed"`
	KeyIncompatible int           `json:"keyIncompatible"`
	Skipped         int           `json:"skipped"`
	Errors          int           `json:"errors"`
	Cases           []CatalogCase `json:"cases"`
	// Note says why the catalog did not run, or ran partly.
	Note string `json:"note,omitempty"`
}

// CatalogCase is one case of the catalog run.
type CatalogCase struct {
	ID      string `json:"id"`
	Version string `json:"version"`
	Verdict string `json:"verdict"`
	// Cause is why a case failed on this key (the key's getInfo lacks …), or why it was skipped.
	Cause string `json:"cause,omitempty"`
}

// Options tune Probe.
type Options struct {
	// Spec is how the key was named (--key, --persona), for the report.
	Spec string
	// Destructive allows what changes the key: reset (twice: at the start and the end), a PIN,
	// discoverable credentials, filling the key.
	Destructive bool
	// PIN is the key's PIN when it has one and the probe is not destructive.
	PIN string
	// Fill, with Destructive, fills the key with discoverable credentials to measure its capacity
	// (a real key wants a touch for each); MaxFill bounds it (default 300).
	Fill    bool
	MaxFill int
	// Clock is the wall clock of timings on keys without a clock of their own (nil: clock.Real).
	Clock clock.Clock
	// OnTouch is called when the key waits for a touch; Progress when a check starts.
	OnTouch  func()
	Progress func(title string)
}

// ProbePIN is the PIN a destructive probe gives the key (long enough for any minimum length).
const ProbePIN = "147258369012"

// Probe checks key k. It returns the report and the profile of what was observed (for a persona).
// The error is for a probe that could not start (the key does not answer CTAPHID at all).
func Probe(ctx context.Context, k keyconn.Key, o Options) (*Report, *keyprofile.Profile, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.MaxFill <= 0 {
		o.MaxFill = 300
	}
	s := &session{k: k, o: o, pr: &keyprofile.Profile{Source: "fidolab probe of " + nonEmpty(o.Spec, k.Describe())}}
	r := &Report{SchemaVersion: SchemaVersion, Tool: "fidolab probe", Started: s.now(), Destructive: o.Destructive,
		Key: KeyInfo{Spec: o.Spec, Description: k.Describe()}}
	if err := s.start(ctx); err != nil {
		return nil, nil, err
	}
	s.identify(&r.Key)
	for _, c := range s.plan() {
		if o.Progress != nil {
			o.Progress(c.title)
		}
		ch := Check{ID: c.id, Title: c.title, Need: c.need, Destructive: c.destructive}
		switch why := s.skipReason(c); {
		case why != "":
			ch.Status, ch.Skipped = Skip, why
		default:
			c.run(ctx, s, &ch)
		}
		r.Checks = append(r.Checks, ch)
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
	}
	r.Left = s.finish(ctx)
	r.Verdict = verdict(r.Checks)
	r.DurationMs = s.now().Sub(r.Started).Milliseconds()
	s.profileFinish()
	return r, s.pr, nil
}

// verdict sums the checks.
func verdict(cs []Check) string {
	worst, skipped := Pass, 0
	for _, c := range cs {
		switch c.Status {
		case Fail:
			worst = Fail
		case Warn:
			if worst != Fail {
				worst = Warn
			}
		case Skip:
			skipped++
		}
	}
	v := "compatible"
	switch worst {
	case Fail:
		v = "incompatible"
	case Warn:
		v = "compatible with warnings"
	}
	if skipped > 0 && worst != Fail {
		v += fmt.Sprintf(", as far as checked (%d checks skipped)", skipped)
	}
	return v
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// hasCTAP2 reports whether the key answered getInfo.
func (s *session) hasCTAP2() bool { return s.info != nil }

// option returns a getInfo option.
func (s *session) option(name string) (value, present bool) {
	if s.info == nil {
		return false, false
	}
	return s.info.Option(name)
}

func (s *session) hasVersion(v string) bool { return s.info != nil && s.info.HasVersion(v) }
