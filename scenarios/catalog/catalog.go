// Package catalog holds the scenarios replayed against a Windows host: hand-written YAML files,
// each a case of the Windows FIDO2 sign-in document with its set-up, steps and the outcome the
// document implies, expanded over the Windows versions where the document draws a version line.
// The built-in catalog is embedded; users add files of the same form with LoadDir.
package catalog

import (
	"errors"
	"fmt"
	"sort"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Catalog is a set of scenarios with unique ids.
type Catalog struct {
	Scenarios []*Scenario
}

// Scenario is one case of the document, before expansion over Windows versions.
type Scenario struct {
	ID        string
	Title     string
	Section   string // the document's section
	Doc       string // the document's exact words this scenario checks
	Supported bool   // what the document says of the case
	Tags      []string
	// Windows is the expansion: one case per version. WindowsExpr is how the file wrote it.
	Windows     VersionSet
	WindowsExpr string
	Host        HostSetup
	Key         KeySetup
	Steps       []Step
	Report      *Report // a field report's provenance; nil for the document's cases
	File        string  // file the scenario came from, as shown in errors
	Line        int
}

// HostSetup is the device of a scenario, apart from its Windows version.
type HostSetup struct {
	Join                    host.Join
	Enable                  host.Enablement
	SharedPC                bool
	ProvisionedBeforePolicy bool
	Online                  bool
	Tenant                  host.Tenant
	OnPrem                  host.OnPremises
	HelloForBusiness        host.HelloForBusiness
	Probes                  []string // field-report probes the model sends (host.Probes)
}

// TagFieldReport marks a scenario that reproduces a publicly reported Windows failure; such a
// scenario has a Report.
const TagFieldReport = "field-report"

// Report is where a field-report scenario comes from and how to recognise it.
type Report struct {
	Source  string // the public report (a URL)
	Quote   string // the reporter's words
	Windows string // "confirmed" (the report shows what Windows does) or "inferred"
	Trigger string // the key behaviour that triggers it
	Sees    string // what the user sees
	// Events are the Microsoft-Windows-WebAuthN/Operational event IDs a real export of the
	// failure holds (docs/traces.md).
	Events []int
	// Match are the trace signatures of the failure (scenarios/fieldmatch syntax), for
	// fidolab trace match.
	Match []string
}

// KeySetup is the key as the scenario finds it: its persona and PIN, and the accounts registered
// on it, in order, through a reference host before the steps run.
type KeySetup struct {
	PersonaRef string           // as written: a built-in name or a file relative to the scenario file
	Persona    *persona.Persona // resolved at load time
	PIN        string
	Accounts   []string
}

// Step is one action and the outcome the document implies for it.
type Step struct {
	Action host.Action
	Expect []Expectation // first match for the version wins
	Line   int
}

// Expectation is an expected outcome, for the versions in When (nil When = every version).
type Expectation struct {
	When    VersionSet
	Outcome result.Outcome // Reason carries the scenario's reason
}

// Expected returns the outcome the step should have on version v.
func (s Step) Expected(v host.Version) (result.Outcome, bool) {
	for _, e := range s.Expect {
		if e.When == nil || e.When.Has(v) {
			return e.Outcome, true
		}
	}
	return result.Outcome{}, false
}

// Config is the host configuration of the scenario on version v.
func (s *Scenario) Config(v host.Version) host.Config {
	return host.Config{
		Version: v, Join: s.Host.Join, Enable: s.Host.Enable, SharedPC: s.Host.SharedPC,
		ProvisionedBeforePolicy: s.Host.ProvisionedBeforePolicy, Online: s.Host.Online, Tenant: s.Host.Tenant,
		OnPrem: s.Host.OnPrem, HelloForBusiness: s.Host.HelloForBusiness, Probes: s.Host.Probes,
	}
}

// Case is a scenario on one Windows version: what the runner runs.
type Case struct {
	*Scenario
	Version host.Version
}

// Cases expands every scenario over its versions, in catalog order.
func (c *Catalog) Cases() []Case {
	var out []Case
	for _, s := range c.Scenarios {
		for _, v := range s.Windows {
			out = append(out, Case{Scenario: s, Version: v})
		}
	}
	return out
}

// Get returns the scenario with the given id.
func (c *Catalog) Get(id string) (*Scenario, bool) {
	for _, s := range c.Scenarios {
		if s.ID == id {
			return s, true
		}
	}
	return nil, false
}

// Merge combines catalogs; an id defined twice is an error naming both places.
func Merge(cats ...*Catalog) (*Catalog, error) {
	out := &Catalog{}
	seen := map[string]*Scenario{}
	var errs []error
	for _, c := range cats {
		if c == nil {
			continue
		}
		for _, s := range c.Scenarios {
			if prev, ok := seen[s.ID]; ok {
				errs = append(errs, &Error{File: s.File, Line: s.Line, Field: "id",
					Msg: fmt.Sprintf("duplicate id %q (first defined at %s:%d)", s.ID, prev.File, prev.Line)})
				continue
			}
			seen[s.ID] = s
			out.Scenarios = append(out.Scenarios, s)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(out.Scenarios, func(i, j int) bool { return out.Scenarios[i].ID < out.Scenarios[j].ID })
	return out, nil
}

// Error is a problem in a catalog file, located by file, line and field.
type Error struct {
	File  string
	Line  int    // 0 for a problem of the whole file (it is too large, it holds no scenario)
	Field string // path of the field, e.g. "steps[1].expect"
	Msg   string
}

func (e *Error) Error() string {
	at := e.File
	if e.Line > 0 {
		at = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", at, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", at, e.Field, e.Msg)
}
