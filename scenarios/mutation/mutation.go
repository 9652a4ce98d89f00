// Package mutation measures how strong the scenario catalog is: it runs the catalog against keys
// with one defect each (Defects, as persona quirks and as faults injected through the knobs) and
// against Windows models with one gate rule removed, and reports which cases notice. A defect
// Windows would notice that no case catches, or a rule whose removal changes nothing, is a hole
// in the catalog; the package's test fails on either, and docs/scenarios.md shows the table.
package mutation

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/fidolab/fidolab/scenarios/winmodel"
)

// Mode is how a defect reaches the key.
type Mode string

// Modes.
const (
	AsPersona Mode = "persona" // the defect is the key's persona (firmware)
	AsFault   Mode = "fault"   // the defect is injected into a default key's knobs
)

// Modes lists how d can be injected: as a persona, as a fault, or both.
func (d Defect) Modes() []Mode {
	var m []Mode
	if d.Persona != "" {
		m = append(m, AsPersona)
	}
	if d.Knobs != nil {
		m = append(m, AsFault)
	}
	return m
}

// PersonaOf parses d's persona, named "defect-ID".
func (d Defect) PersonaOf() (*persona.Persona, error) {
	return persona.Parse([]byte(d.Persona+"\nname: defect-"+d.ID+"\n"), "defect "+d.ID)
}

// Outcome is what the catalog did with one defect injected one way.
type Outcome struct {
	Defect Defect
	Mode   Mode
	Run    *result.Run
	// Catchers are the scenarios with at least one case that did not pass, sorted.
	Catchers []string
	// Red counts the cases that did not pass.
	Red int
	// Unexplained lists the red cases the report does not blame on the key with a cause (verdict
	// other than key-incompatible, or no cause): results that would not say what is wrong.
	Unexplained []string
}

// Caught reports whether any case noticed the defect.
func (o Outcome) Caught() bool { return o.Red > 0 }

// Inject runs cat against d injected as m, on the Windows model. baseline, when not nil, is the
// run of cat with each scenario's own key (runner.Options.Baseline), so that a red case is blamed
// on the key without running it again.
func Inject(ctx context.Context, cat *catalog.Catalog, d Defect, m Mode, baseline *result.Run) (Outcome, error) {
	var keys runner.KeyFactory
	switch m {
	case AsPersona:
		p, err := d.PersonaOf()
		if err != nil {
			return Outcome{}, err
		}
		keys = runner.InProcess(p)
	case AsFault:
		if d.Knobs == nil {
			return Outcome{}, fmt.Errorf("defect %s has no fault form", d.ID)
		}
		keys = runner.InProcessFault(nil, d.ID, d.Knobs)
	default:
		return Outcome{}, fmt.Errorf("defect %s: unknown mode %q", d.ID, m)
	}
	run, err := runner.Run(ctx, cat, runner.Options{Keys: keys, Baseline: baseline, NoExchanges: true})
	if err != nil {
		return Outcome{}, err
	}
	o := Outcome{Defect: d, Mode: m, Run: run}
	for _, c := range run.Cases {
		if c.Verdict == result.Pass {
			continue
		}
		o.Red++
		if !slices.Contains(o.Catchers, c.ID) {
			o.Catchers = append(o.Catchers, c.ID)
		}
		if c.Verdict != result.KeyIncompatible || strings.TrimSpace(c.KeyCause) == "" {
			o.Unexplained = append(o.Unexplained, fmt.Sprintf("%s@%s: %s %s", c.ID, c.Version, c.Verdict, c.Error))
		}
	}
	slices.Sort(o.Catchers)
	return o, nil
}

// RuleOutcome is what the catalog did against a model without one gate rule.
type RuleOutcome struct {
	Rule winmodel.Rule
	Run  *result.Run
	// Changed are the cases whose outcome changed (they no longer pass), as "id@version".
	Changed []string
}

// RemoveRule runs the cases of cat that use one of the rule's actions against the model without
// that rule. Cases that never perform those actions cannot change, so they are not run.
func RemoveRule(ctx context.Context, cat *catalog.Catalog, r winmodel.Rule) (RuleOutcome, error) {
	sub := &catalog.Catalog{}
	for _, s := range cat.Scenarios {
		if slices.ContainsFunc(s.Steps, func(st catalog.Step) bool { return slices.Contains(r.Actions, st.Action.Name) }) {
			sub.Scenarios = append(sub.Scenarios, s)
		}
	}
	o := RuleOutcome{Rule: r}
	if len(sub.Scenarios) == 0 {
		return o, nil
	}
	run, err := runner.Run(ctx, sub, runner.Options{Target: winmodel.New(winmodel.WithoutRule(r.ID)), NoExchanges: true})
	if err != nil {
		return o, err
	}
	o.Run = run
	for _, c := range run.Cases {
		if c.Verdict != result.Pass {
			o.Changed = append(o.Changed, c.ID+"@"+c.Version)
		}
	}
	return o, nil
}
