package mutation

import (
	"fmt"
	"sort"
	"strings"
)

// Strength is the catalog measured against every defect and every rule.
type Strength struct {
	Defects []DefectResult
	Rules   []RuleOutcome
}

// DefectResult is one defect with the outcome of each way it was injected (none for a defect
// that no persona or knob expresses).
type DefectResult struct {
	Defect   Defect
	Outcomes []Outcome
}

// Counts returns how many Windows-visible injections were caught, of how many, and how many
// invisible ones turned a case red (which should be none).
func (s Strength) Counts() (caught, visible, flagged int) {
	for _, d := range s.Defects {
		for _, o := range d.Outcomes {
			switch {
			case d.Defect.Visible:
				visible++
				if o.Caught() {
					caught++
				}
			case o.Caught():
				flagged++
			}
		}
	}
	return caught, visible, flagged
}

// Markdown renders the defect table and the rule table of docs/scenarios.md.
func (s Strength) Markdown() string {
	var b strings.Builder
	caught, visible, flagged := s.Counts()
	fmt.Fprintf(&b, "Windows-visible defects: **%d of %d injections caught**; Windows-invisible defects that turned a case red: %d.\n\n", caught, visible, flagged)
	if nr := notRun(s.Defects); len(nr) > 0 {
		fmt.Fprintf(&b, "Not injected: %s (the table says why).\n\n", strings.Join(nr, ", "))
	}
	b.WriteString("| defect | injected as | Windows notices | caught by (failing cases) |\n|---|---|---|---|\n")
	for _, d := range s.Defects {
		notices := "yes"
		if !d.Defect.Visible {
			notices = "no: " + d.Defect.Why
		}
		if len(d.Outcomes) == 0 {
			why, as := "no persona field or knob expresses it", "(source only)"
			if d.Defect.NotRun != "" {
				why, as = d.Defect.NotRun, "(knob)"
			}
			fmt.Fprintf(&b, "| `%s`: %s | %s | %s | not run: %s |\n", d.Defect.ID, d.Defect.What, as, notices, why)
			continue
		}
		for _, o := range d.Outcomes {
			by := "—"
			if o.Caught() {
				by = catchers(o)
			}
			fmt.Fprintf(&b, "| `%s`: %s | %s | %s | %s |\n", d.Defect.ID, d.Defect.What, o.Mode, notices, by)
		}
	}
	b.WriteString("\n| rule removed | cases whose outcome changes |\n|---|---|\n")
	for _, r := range s.Rules {
		fmt.Fprintf(&b, "| `%s` | %s |\n", r.Rule.ID, changed(r.Changed))
	}
	return b.String()
}

// catchers lists the scenarios that caught o with how many of their cases did; a defect that
// breaks most of the catalog is summed up with a few examples.
func catchers(o Outcome) string {
	n := map[string]int{}
	for _, c := range o.Run.Cases {
		if c.Verdict != "pass" {
			n[c.ID]++
		}
	}
	const listed = 6
	var parts []string
	for _, id := range o.Catchers {
		parts = append(parts, fmt.Sprintf("`%s` (%d)", id, n[id]))
	}
	if len(parts) <= listed {
		return strings.Join(parts, ", ")
	}
	return fmt.Sprintf("%d scenarios, %d cases, among them %s, …", len(parts), o.Red, strings.Join(parts[:3], ", "))
}

func changed(cases []string) string {
	if len(cases) == 0 {
		return "**none**"
	}
	by := map[string][]string{}
	var ids []string
	for _, c := range cases {
		id, v, _ := strings.Cut(c, "@")
		if by[id] == nil {
			ids = append(ids, id)
		}
		by[id] = append(by[id], v)
	}
	sort.Strings(ids)
	var parts []string
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("`%s` %s", id, strings.Join(by[id], " ")))
	}
	return strings.Join(parts, "; ")
}

// notRun lists the Windows-visible defects that are not injected.
func notRun(ds []DefectResult) []string {
	var out []string
	for _, d := range ds {
		if d.Defect.Visible && len(d.Outcomes) == 0 {
			out = append(out, "`"+d.Defect.ID+"`")
		}
	}
	return out
}
