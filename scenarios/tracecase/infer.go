// Package tracecase reads a trace as a case of the catalog: which actions the user took (a
// lock-screen sign-in by LogonUI, a browser registration or sign-in, Settings' key management),
// on what device, with what key, and what came of each — and writes it as a catalog scenario that
// reproduces it, with a persona of the recorded key beside it and every guess marked. fidolab trace
// scenario writes such files; Infer is also what compares a field report with the catalog.
//
// A trace of fidolab run --trace says exactly what happened (its marks name each step's action and
// observed outcome, its case label the scenario and Windows version); a trace imported from a
// Windows event log says it only through the CTAP traffic, the process that asked and the events,
// so there the actions, the device and the outcomes are inferred, and marked as such.
package tracecase

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Case is a trace read as a catalog case.
type Case struct {
	// ID is the scenario id to write; Label the trace's case label ("" for an event log).
	ID, Label string
	Title     string
	// Windows is the version the case ran on (a guess for an event log: Guesses says why).
	Windows host.Version
	// Host is the device; Key the key before the steps.
	Host  host.Config
	Key   KeyState
	Steps []Step
	// Process is the program that talked to the key (an event log's), as the import named it.
	Process string
	// Guesses are everything set without evidence, each with why: they become comments.
	Guesses []Guess
	// Evidence says what the case was read from ("marks of fidolab run", "event 1104 …").
	Evidence []string
	// Known is the catalog scenario the case label names, when the catalog has it.
	Known *catalog.Scenario

	group *replay.Group
	pin   string // the key's PIN as the steps go
}

// KeyState is the key before the first step.
type KeyState struct {
	// PIN is the key's PIN ("" when it had none): never the real one (no trace holds it), a
	// stand-in the scenario types where the recorded user typed theirs.
	PIN string
	// Accounts are the accounts on the key, in the order they were registered.
	Accounts []string
}

// Step is one action and what came of it.
type Step struct {
	Action  host.Action
	Outcome result.Outcome
	// Reason explains the outcome for people: the CTAP status or event it was read from.
	Reason string
	// Guessed is set when the action or outcome was inferred rather than recorded.
	Guessed string
	// Steps are the trace steps (exchanges) that belong to it.
	Trace []*replay.Step
}

// Guess is one field set without evidence.
type Guess struct{ Field, Why string }

// StandInPIN is the PIN a generated scenario gives the key; WrongPIN is what it types where the
// recorded user typed a wrong one.
const (
	StandInPIN = "7391"
	WrongPIN   = "9999"
	NewPIN     = "246810"
)

// Options tune Infer.
type Options struct {
	// Catalog is where a run trace's case label is looked up (nil: the built-in catalog).
	Catalog *catalog.Catalog
	// Windows, when set, is the version to write instead of the one inferred.
	Windows string
	// ID, when set, is the scenario id to write.
	ID string
	// Source names the trace in titles and comments.
	Source string
}

var (
	markStep     = regexp.MustCompile(`^(step \d+|set-up): ([a-z0-9-]+)(?: · (.*))?$`)
	markObserved = regexp.MustCompile(`^(step \d+|set-up) observed: (.*)$`)
)

// Infer reads group g of plan p as a case.
func Infer(p *replay.Plan, g *replay.Group, o Options) (*Case, error) {
	if o.Catalog == nil {
		cat, err := catalog.Embedded()
		if err != nil {
			return nil, err
		}
		o.Catalog = cat
	}
	c := &Case{Label: g.Label, group: g}
	var err error
	if hasRunMarks(g) {
		err = c.fromMarks(p, g, o)
	} else {
		err = c.fromTraffic(p, g)
	}
	if err != nil {
		return nil, err
	}
	if o.Windows != "" {
		v, err := host.ParseVersion(o.Windows)
		if err != nil {
			return nil, err
		}
		c.Windows = v
		c.dropGuess("windows")
	}
	c.Host.Version = c.Windows
	c.ID = nonEmpty(o.ID, c.ID)
	if len(c.Steps) == 0 {
		return nil, fmt.Errorf("%s: no action a Windows host takes could be read from the trace (only %s)",
			nonEmpty(g.Label, "the trace"), describeCommands(g))
	}
	return c, nil
}

func hasRunMarks(g *replay.Group) bool {
	for _, m := range g.Marks {
		if markStep.MatchString(m.Text) {
			return true
		}
	}
	return false
}

func (c *Case) guess(field, format string, a ...any) {
	c.Guesses = append(c.Guesses, Guess{field, fmt.Sprintf(format, a...)})
}

func (c *Case) dropGuess(field string) {
	var kept []Guess
	for _, g := range c.Guesses {
		if g.Field != field {
			kept = append(kept, g)
		}
	}
	c.Guesses = kept
}

// fromMarks reads a fidolab run case: its label names the scenario and version, its marks the
// actions and observed outcomes.
func (c *Case) fromMarks(p *replay.Plan, g *replay.Group, o Options) error {
	id, ver, _ := strings.Cut(g.Label, "@")
	c.ID = id + "-from-trace"
	c.Title = "Reproduces " + g.Label + " as fidolab run recorded it"
	c.Evidence = append(c.Evidence, "the marks fidolab run --trace wrote for case "+g.Label)
	if v, err := host.ParseVersion(ver); err == nil {
		c.Windows = v
	} else {
		c.Windows = host.Versions[len(host.Versions)-1]
		c.guess("windows", "the case label %q names no Windows version", g.Label)
	}
	if sc, ok := o.Catalog.Get(id); ok {
		c.Known = sc
		c.Host = sc.Config(c.Windows)
		c.Evidence = append(c.Evidence, "the device is the catalog scenario "+id+"'s")
	} else {
		c.Host = guessedHost(c)
	}
	steps := splitByMarks(g)
	for _, seg := range steps {
		if seg.setup {
			if seg.action.Name == host.ActRegister && seg.action.Account != "" {
				c.Key.Accounts = append(c.Key.Accounts, seg.action.Account)
			}
			if seg.typedPIN || seg.action.Name == host.ActSetPIN {
				c.Key.PIN = StandInPIN
			}
			continue
		}
		if len(c.Steps) == 0 {
			c.pin = c.Key.PIN
		}
		st := Step{Action: seg.action, Outcome: seg.observed, Trace: seg.trace, Reason: "observed: " + seg.observed.String()}
		c.fillPINs(&st, seg.typedPIN)
		c.Steps = append(c.Steps, st)
	}
	return nil
}

// fillPINs types the stand-in PIN where the recorded user typed one: a wrong one where the key
// refused it, a new one where it changed.
func (c *Case) fillPINs(st *Step, typed bool) {
	if !typed && st.Action.Name != host.ActChangePIN && st.Action.Name != host.ActSetPIN {
		return
	}
	wrong := false
	for _, ts := range st.Trace {
		if ts.Cmd == ctap.CmdClientPIN && statusOf(ts) == ctap.ErrPINInvalid {
			wrong = true
		}
	}
	if st.Outcome.Kind == host.KindError && (st.Outcome.Code == host.CodePINInvalid || st.Outcome.Code == host.CodePINBlocked ||
		st.Outcome.Code == host.CodePINAuthBlocked) {
		wrong = true
	}
	switch st.Action.Name {
	case host.ActSetPIN:
		st.Action.NewPIN = StandInPIN
	case host.ActChangePIN:
		st.Action.PIN, st.Action.NewPIN = c.pin, NewPIN
		if wrong {
			st.Action.PIN = WrongPIN
		}
	default:
		st.Action.PIN = c.pin
		if st.Action.PIN == "" {
			st.Action.PIN = StandInPIN
		}
		if wrong {
			st.Action.PIN = WrongPIN
		}
	}
	if st.Action.Name == host.ActChangePIN && st.Outcome.Kind != host.KindError {
		c.pin = st.Action.NewPIN // later steps type the new PIN
	}
	if (st.Action.Name == host.ActSetPIN || st.Action.Name == host.ActRegister) && st.Outcome.Kind != host.KindError && c.pin == "" {
		c.pin = StandInPIN // a registration sets a PIN on a key without one
	}
	if st.Action.Name == host.ActResetKey && st.Outcome.Kind != host.KindError {
		c.pin = ""
	}
}

// segment is the part of a group between two step marks.
type segment struct {
	setup    bool
	action   host.Action
	typedPIN bool
	observed result.Outcome
	trace    []*replay.Step
}

func splitByMarks(g *replay.Group) []*segment {
	var segs []*segment
	var cur *segment
	mi := 0
	for i := 0; i <= len(g.Steps); i++ {
		for mi < len(g.Marks) && g.Marks[mi].Before == i {
			text := g.Marks[mi].Text
			mi++
			if m := markStep.FindStringSubmatch(text); m != nil {
				cur = &segment{setup: m[1] == "set-up", action: host.Action{Name: m[2]}}
				parseParams(cur, m[3])
				segs = append(segs, cur)
				continue
			}
			if m := markObserved.FindStringSubmatch(text); m != nil && cur != nil {
				cur.observed = parseOutcome(m[2])
			}
		}
		if i < len(g.Steps) && cur != nil {
			cur.trace = append(cur.trace, g.Steps[i])
		}
	}
	return segs
}

// parseParams reads the runner's description of an action's parameters (PINs never appear).
func parseParams(s *segment, d string) {
	for _, part := range strings.Split(d, ", ") {
		switch {
		case part == "":
		case part == "PIN typed":
			s.typedPIN = true
		case part == "new PIN typed":
		case strings.HasPrefix(part, "account "):
			s.action.Account = strings.TrimPrefix(part, "account ")
		case strings.HasPrefix(part, "picks "):
			s.action.Pick = strings.TrimPrefix(part, "picks ")
		case strings.Contains(part, "="):
			k, v, _ := strings.Cut(part, "=")
			if s.action.Args == nil {
				s.action.Args = map[string]string{}
			}
			s.action.Args[k] = v
		}
	}
}

// parseOutcome reads result.Outcome.String: "signed-in as bob", "error pin-invalid", "done".
func parseOutcome(s string) result.Outcome {
	kind, rest, _ := strings.Cut(s, " ")
	o := result.Outcome{Kind: kind}
	if acc, ok := strings.CutPrefix(rest, "as "); ok {
		o.Account = acc
	} else {
		o.Code = rest
	}
	return o
}

func statusOf(s *replay.Step) ctap.Status {
	if s.Response == nil || s.Response.Code == nil || (s.Response.HID != "CBOR" && s.Response.HID != "-") {
		return ctap.StatusOK
	}
	return ctap.Status(*s.Response.Code)
}

func describeCommands(g *replay.Group) string {
	seen := map[string]bool{}
	var names []string
	for _, s := range g.Steps {
		n := s.Name()
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no exchanges"
	}
	return strings.Join(names, ", ")
}

func nonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
