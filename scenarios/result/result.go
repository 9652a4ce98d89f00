// Package result holds what a scenario run observed, case by case and step by step, in the form
// every report (terminal matrix, JUnit XML, JSON, HTML) is rendered from. It is the contract between
// the runner and the reports: plain data, JSON-serialisable, no behaviour beyond summaries.
package result

import (
	"sort"
	"time"
)

// Run is one `fidolab run`: every case of the catalog that matched the filter.
type Run struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration"`
	// Target is where the host ran: "model" (the built-in Windows model) or a VM description.
	Target string `json:"target"`
	// Key describes the key under test: "in-process persona default", "socket:/tmp/k.sock", …
	Key string `json:"key"`
	// Persona is set when the run targets another persona or key than the catalog's own
	// (the vendor question: which cases does this key break, and why).
	Persona  string   `json:"persona,omitempty"`
	Versions []string `json:"versions"` // Windows versions in matrix column order
	Cases    []*Case  `json:"cases"`
	// LeftOut lists scenarios not run because they are about a particular key of their own (a
	// persona without hmac-secret, a full key…) while this run targets another key, or because on
	// a key outside the process they need an attestation root the model cannot check (a tenant that
	// enforces attestation trusts only FIDO MDS roots).
	LeftOut []string `json:"leftOut,omitempty"`
}

// Case is one scenario expanded for one Windows version.
type Case struct {
	ID         string   `json:"id"` // scenario id, e.g. "multi-account-lock-screen"
	Title      string   `json:"title"`
	Version    string   `json:"version"`   // Windows version, e.g. "10-1909", "11-24H2"
	Supported  bool     `json:"supported"` // what the document says of this case
	DocWords   string   `json:"docWords"`  // the document's words this case checks
	DocSection string   `json:"docSection,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	File       string   `json:"file,omitempty"` // catalog file it came from
	Steps      []*Step  `json:"steps"`
	Verdict    Verdict  `json:"verdict"`
	// KeyCause explains a failure caused by the key rather than by the host (no hmac-secret,
	// no resident keys, PIN protocol, ordering…); empty for a regression.
	KeyCause string        `json:"keyCause,omitempty"`
	Error    string        `json:"error,omitempty"` // the case could not run (set-up failed)
	Duration time.Duration `json:"duration"`
}

// Refused reports whether the case, as the document describes it, ends with Windows refusing:
// its last step expects an error or the security-key option not to be offered. A passing case
// that is refused "was correctly refused"; any other passing case "worked".
func (c *Case) Refused() bool {
	if c == nil || len(c.Steps) == 0 {
		return false
	}
	last := c.Steps[len(c.Steps)-1]
	return last != nil && (last.Expected.Kind == "error" || last.Expected.Kind == "not-offered")
}

// Verdict is a case's or a step's result.
type Verdict string

// Verdicts.
const (
	Pass Verdict = "pass" // observed outcome equals the expected one
	Fail Verdict = "fail" // observed outcome differs: a regression, or a key that breaks the case
	// KeyIncompatible is a Fail explained by the key under test (only when the run targets a key
	// or persona other than the catalog's): listed apart from regressions.
	KeyIncompatible Verdict = "key-incompatible"
	Error           Verdict = "error" // the case could not run at all
	// Skipped is a case the runner did not run on purpose: it would have erased a key that is not
	// empty without --destructive, or needed a replug nobody could do. Case.Error says why.
	Skipped Verdict = "skipped"
)

// Step is one action of a case and what happened.
type Step struct {
	Action    string        `json:"action"`           // e.g. "register", "lock-screen-sign-in"
	Detail    string        `json:"detail,omitempty"` // the action's parameters, human-readable
	Expected  Outcome       `json:"expected"`
	Observed  Outcome       `json:"observed"`
	Verdict   Verdict       `json:"verdict"`
	Exchanges []Exchange    `json:"exchanges,omitempty"` // the CTAP traffic of this step, in order
	Notes     []string      `json:"notes,omitempty"`     // model decisions, e.g. "PIN protocol 2 chosen"
	Duration  time.Duration `json:"duration"`
}

// Outcome is what a step leads to, as a user would see it.
type Outcome struct {
	// Kind is the outcome class: "signed-in", "registered", "done", "error", "not-offered".
	Kind string `json:"kind"`
	// Account is who is signed in (or was registered), for signed-in/registered.
	Account string `json:"account,omitempty"`
	// Code names the error or why the option is not offered, e.g. "pin-invalid", "no-hmac-secret",
	// "version-unsupported", "offline-no-cached-secret".
	Code string `json:"code,omitempty"`
	// Reason is free text for people; it never takes part in comparison.
	Reason string `json:"reason,omitempty"`
}

// Equal compares the parts of two outcomes that carry meaning (not Reason).
func (o Outcome) Equal(p Outcome) bool {
	return o.Kind == p.Kind && o.Account == p.Account && o.Code == p.Code
}

// String renders an outcome compactly: "signed-in as bob", "error pin-invalid".
func (o Outcome) String() string {
	s := o.Kind
	if o.Account != "" {
		s += " as " + o.Account
	}
	if o.Code != "" {
		s += " " + o.Code
	}
	return s
}

// Exchange is one CTAP request and response, decoded for people (secrets redacted).
type Exchange struct {
	Command  string        `json:"command"`  // "authenticatorGetAssertion", "U2F_AUTHENTICATE", …
	Request  string        `json:"request"`  // diagnostic notation, secrets redacted
	Response string        `json:"response"` // status name + diagnostic notation
	Status   string        `json:"status"`   // "CTAP2_OK", "CTAP2_ERR_PIN_INVALID", …
	Duration time.Duration `json:"duration"`
}

// Summary counts verdicts. Worked and Refused split Passed: cases that did what the document
// says works, and cases that Windows refused as the document says it does.
type Summary struct {
	Total, Passed, Failed, KeyIncompatible, Errors, Skipped int
	Worked, Refused                                         int
}

// Summary counts the run's verdicts.
func (r *Run) Summary() Summary {
	var s Summary
	for _, c := range r.Cases {
		s.Total++
		switch c.Verdict {
		case Pass:
			s.Passed++
			if c.Refused() {
				s.Refused++
			} else {
				s.Worked++
			}
		case Fail:
			s.Failed++
		case KeyIncompatible:
			s.KeyIncompatible++
		case Skipped:
			s.Skipped++
		default:
			s.Errors++
		}
	}
	return s
}

// OK reports whether every case passed (key-incompatible and skipped cases count as failures for
// the exit code: what was asked was not fully checked).
func (r *Run) OK() bool {
	s := r.Summary()
	return s.Passed == s.Total
}

// Matrix arranges cases by scenario (rows, in first-seen order) and Windows version (columns).
func (r *Run) Matrix() (rows []string, cell map[string]map[string]*Case) {
	cell = map[string]map[string]*Case{}
	for _, c := range r.Cases {
		if cell[c.ID] == nil {
			cell[c.ID] = map[string]*Case{}
			rows = append(rows, c.ID)
		}
		cell[c.ID][c.Version] = c
	}
	return rows, cell
}

// SortCases orders cases by scenario id then version order.
func (r *Run) SortCases() {
	idx := map[string]int{}
	for i, v := range r.Versions {
		idx[v] = i
	}
	sort.SliceStable(r.Cases, func(i, j int) bool {
		a, b := r.Cases[i], r.Cases[j]
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return idx[a.Version] < idx[b.Version]
	})
}
