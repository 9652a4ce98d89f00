// Package user is the simulated person holding the key: every question the key would put to a
// human (touch me, show me your finger) is answered by a Policy, never hard-wired.
package user

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
)

// Kind says what the key asks for.
type Kind int

// What the key can ask.
const (
	// Presence is a touch of the button (user presence, UP).
	Presence Kind = iota
	// Verification is a fingerprint on the built-in sensor (user verification, UV).
	Verification
)

func (k Kind) String() string {
	if k == Verification {
		return "verification"
	}
	return "presence"
}

// Request describes one question; policies may script on it.
type Request struct {
	Kind    Kind
	Command string // e.g. "authenticatorGetAssertion", "U2F_REGISTER"
	RPID    string
	// Clock is the key's clock: a policy that takes time (Delayed) waits on it, so a user reaching
	// for an in-process key on a virtual clock costs no wall time. nil means the wall clock.
	Clock clock.Clock
}

// Answer is the user's reaction. The zero value is Timeout: an answer nobody gave never
// approves anything.
type Answer int

// Possible answers.
const (
	// Timeout: the user never reacted; the key gives up as a real one would.
	Timeout Answer = iota
	// No: the user refused (for UV: the finger did not match).
	No
	// Yes: the user touched the key (or the finger matched).
	Yes
)

func (a Answer) String() string {
	switch a {
	case Yes:
		return "yes"
	case No:
		return "no"
	default:
		return "timeout"
	}
}

// ParseAnswer reads "yes", "no" or "timeout".
func ParseAnswer(s string) (Answer, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "y", "true", "touch", "match":
		return Yes, nil
	case "no", "n", "false", "deny", "nomatch":
		return No, nil
	case "timeout", "none":
		return Timeout, nil
	}
	return Timeout, fmt.Errorf("user answer %q: want yes, no or timeout", s)
}

// Policy answers the key's questions. Ask blocks while the simulated user "thinks" and must
// return promptly with ctx.Err() when ctx is cancelled (CTAPHID_CANCEL, power off).
type Policy interface {
	Ask(ctx context.Context, r Request) (Answer, error)
}

// Fixed always gives the same answer at once. Its zero value never answers yes.
type Fixed Answer

// Ask implements Policy.
func (f Fixed) Ask(ctx context.Context, _ Request) (Answer, error) {
	if err := ctx.Err(); err != nil {
		return Timeout, err
	}
	return Answer(f), nil
}

// Always is the policy of a user who touches the key every time (the CLI's default, --user yes).
// It is a constant: no package can make it mean anything else.
const Always = Fixed(Yes)

// Delayed answers after a delay on the key's clock (Request.Clock), as a person reaching for
// the key would.
type Delayed struct {
	After  time.Duration
	Answer Answer
}

// Ask implements Policy.
func (d Delayed) Ask(ctx context.Context, r Request) (Answer, error) {
	if err := clock.Or(r.Clock).Sleep(ctx, d.After); err != nil {
		return Timeout, err
	}
	return d.Answer, nil
}

// Script answers from a list, one entry per question, then asks Then; a nil Then is a user who
// stops reacting (Timeout).
type Script struct {
	mu      sync.Mutex
	answers []Answer
	Then    Policy
}

// NewScript returns a policy that answers a, in order, then asks then (a nil then stops
// reacting).
func NewScript(then Policy, a ...Answer) *Script {
	return &Script{answers: append([]Answer(nil), a...), Then: then}
}

// Ask implements Policy.
func (s *Script) Ask(ctx context.Context, r Request) (Answer, error) {
	s.mu.Lock()
	if len(s.answers) > 0 {
		a := s.answers[0]
		s.answers = s.answers[1:]
		s.mu.Unlock()
		return a, ctx.Err()
	}
	s.mu.Unlock()
	if s.Then == nil {
		return Fixed(Timeout).Ask(ctx, r)
	}
	return s.Then.Ask(ctx, r)
}

// left returns the answers not given yet.
func (s *Script) left() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Answer(nil), s.answers...)
}

// Remaining reports how many scripted answers are left.
func (s *Script) Remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answers)
}

// Switch is a policy whose behaviour is changed at run time, e.g. by the control API. In manual
// mode questions wait for the simulated finger: Touch answers one question, Hold(true) rests the
// finger on the key so every question is answered at once until Hold(false). Without a policy
// (NewSwitch(nil)) questions outside manual mode time out.
type Switch struct {
	mu      sync.Mutex
	current Policy
	manual  bool
	held    bool
	touch   chan struct{} // one buffered single touch
	holding chan struct{} // closed while the finger rests on the key
	asked   int
}

// NewSwitch starts with policy p.
func NewSwitch(p Policy) *Switch {
	return &Switch{current: p, touch: make(chan struct{}, 1), holding: make(chan struct{})}
}

// Set replaces the policy and leaves manual mode.
func (s *Switch) Set(p Policy) {
	s.mu.Lock()
	s.current, s.manual = p, false
	s.mu.Unlock()
}

// Current returns the policy used outside manual mode, and whether manual mode is on.
func (s *Switch) Current() (p Policy, manual, held bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current, s.manual, s.held
}

// SetManual makes questions wait for Touch or Hold.
func (s *Switch) SetManual(on bool) {
	s.mu.Lock()
	s.manual = on
	s.mu.Unlock()
}

// Hold rests the finger on the key (true) or lifts it (false), and enters manual mode: this is the
// "touch/on" and "touch/off" of a robot finger over a key without a button.
func (s *Switch) Hold(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.manual = true
	s.setHeld(on)
}

// SetHeld rests or lifts the finger without changing the mode: the finger matters in manual mode.
func (s *Switch) SetHeld(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setHeld(on)
}

func (s *Switch) setHeld(on bool) {
	if on == s.held {
		return
	}
	s.held = on
	if on {
		close(s.holding)
	} else {
		s.holding = make(chan struct{})
	}
}

// Touch answers the pending (or next) question with yes in manual mode.
func (s *Switch) Touch() {
	select {
	case s.touch <- struct{}{}:
	default:
	}
}

// Untouch withdraws a touch that no question has consumed yet.
func (s *Switch) Untouch() {
	select {
	case <-s.touch:
	default:
	}
}

// Asked reports how many questions the key has put so far.
func (s *Switch) Asked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked
}

// Ask implements Policy.
func (s *Switch) Ask(ctx context.Context, r Request) (Answer, error) {
	s.mu.Lock()
	s.asked++
	p, manual, holding := s.current, s.manual, s.holding
	s.mu.Unlock()
	if !manual {
		if p == nil {
			return Fixed(Timeout).Ask(ctx, r)
		}
		return p.Ask(ctx, r)
	}
	select {
	case <-ctx.Done():
		return Timeout, ctx.Err()
	case <-s.touch:
		return Yes, nil
	case <-holding:
		return Yes, nil
	}
}

// String describes the policy for status displays.
func (s *Switch) String() string {
	p, manual, held := s.Current()
	if manual {
		return fmt.Sprintf("manual (finger held: %t)", held)
	}
	return Describe(p)
}

// Describe renders a policy in its ParsePolicy form where it has one: ParsePolicy(Describe(p))
// behaves as p does from now on.
func Describe(p Policy) string {
	switch v := p.(type) {
	case nil:
		return Timeout.String()
	case Fixed:
		return Answer(v).String()
	case Delayed:
		return fmt.Sprintf("delay:%s:%s", v.After, v.Answer)
	case *Script:
		left := v.left()
		if len(left) == 0 {
			return Describe(v.Then)
		}
		names := make([]string, len(left))
		for i, a := range left {
			names[i] = a.String()
		}
		d := "script:" + strings.Join(names, ",")
		if v.Then != Policy(Always) {
			d += " then " + Describe(v.Then)
		}
		return d
	case *Switch:
		return v.String()
	}
	return fmt.Sprintf("%T", p)
}

// MaxDelay is the longest delay:D a policy may wait before answering; a person who has not
// touched the key after ten minutes is the timeout policy.
const MaxDelay = 10 * time.Minute

// ParsePolicy reads a policy from its command-line form: "yes", "no", "timeout", "delay:500ms",
// "delay:2s:no", "script:yes,no,yes" (then yes), "manual".
func ParsePolicy(s string) (Policy, error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch k := strings.ToLower(kind); {
	case hasArg && k != "delay" && k != "script":
		return nil, fmt.Errorf("user policy %q: %s takes no argument", s, kind)
	case !hasArg && (k == "delay" || k == "script"):
		return nil, fmt.Errorf("user policy %q: want %s", s, map[string]string{"delay": "delay:D[:ANSWER], e.g. delay:2s", "script": "script:A,B,…, e.g. script:yes,no"}[k])
	}
	switch strings.ToLower(kind) {
	case "", "yes", "always":
		return Always, nil
	case "no", "never", "deny":
		return Fixed(No), nil
	case "timeout":
		return Fixed(Timeout), nil
	case "delay":
		ds, as, _ := strings.Cut(arg, ":")
		d, err := time.ParseDuration(ds)
		if err != nil {
			return nil, fmt.Errorf("user policy %q: %w", s, err)
		}
		if d < 0 || d > MaxDelay {
			return nil, fmt.Errorf("user policy %q: delay %v outside 0s..%v", s, d, MaxDelay)
		}
		a := Yes
		if as != "" {
			if a, err = ParseAnswer(as); err != nil {
				return nil, err
			}
		}
		return Delayed{After: d, Answer: a}, nil
	case "script":
		var as []Answer
		for _, f := range strings.Split(arg, ",") {
			a, err := ParseAnswer(f)
			if err != nil {
				return nil, fmt.Errorf("user policy %q: %w", s, err)
			}
			as = append(as, a)
		}
		return NewScript(Always, as...), nil
	case "manual":
		sw := NewSwitch(Always)
		sw.SetManual(true)
		return sw, nil
	}
	return nil, fmt.Errorf("user policy %q: want yes, no, timeout, delay:D[:ANSWER], script:A,B,… or manual", s)
}
