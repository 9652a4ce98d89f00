package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
)

//go:embed page.html.tmpl
var pageSource string

// page is parsed once; html/template escapes every value by the context it lands in.
var page = template.Must(template.New("page").Funcs(template.FuncMap{
	"verdict": verdictWord,
	"oneLine": oneLine,
	"trim":    func(s string) string { return strings.TrimRight(s, "\n") },
	"join":    func(s []string) string { return strings.Join(s, ", ") },
}).Parse(pageSource))

type htmlPage struct {
	Run         *result.Run
	Summary     result.Summary
	SummaryLine string
	OK          bool
	Started     string
	Duration    string
	Versions    []string
	Rows        []htmlRow
	Cases       []*htmlCase
	KeyGroups   []htmlKeyGroup
	Errors      []*htmlCase
	Skipped     []*htmlCase
	Failures    []htmlFailure
	Counts      []htmlCount
}

type htmlCount struct{ Class, Text string }

// htmlFailure is one scenario failing the same way on one or more versions.
type htmlFailure struct {
	First    *htmlCase
	Versions []string
	Step     *result.Step
	N        int
}

type htmlRow struct {
	ID, Title string
	Cells     []htmlCell
}

type htmlCell struct {
	Case   *htmlCase // nil: not in this run
	Class  string
	Symbol string
	Tip    string
}

type htmlCase struct {
	*result.Case
	Anchor, Class, Symbol string
	Steps                 []htmlStep
}

type htmlStep struct {
	*result.Step
	N       int
	Class   string
	Failing bool
}

type htmlKeyGroup struct {
	Cause string
	Cases []*htmlCase
}

var htmlSymbols = map[string]string{"pass": "✓", "refused": "⊘", "fail": "✗", "keyinc": "!", "error": "?", "none": "–", "skip": "↷"}

// HTML writes a self-contained page (inline CSS and a little inline JS, nothing fetched): the
// matrix with colour-coded cells linking to each case, each case with the document's words, every
// step's expected and observed outcome and notes, and every CTAP request and response decoded.
func HTML(w io.Writer, r *result.Run) error {
	if r == nil {
		return fmt.Errorf("report: no run")
	}
	r = withoutNil(r)
	p := htmlPage{Run: r, Summary: r.Summary(), SummaryLine: summaryLine(r), OK: r.OK() && len(r.Cases) > 0,
		Versions: versionsOf(r)}
	sm := p.Summary
	p.Counts = []htmlCount{{"", plural(sm.Total, "case", "cases")}, {"pass", fmt.Sprintf("%d worked", sm.Worked)},
		{"pass refused", fmt.Sprintf("%d refused as documented", sm.Refused)}, {"fail", fmt.Sprintf("%d failed", sm.Failed)}}
	if sm.KeyIncompatible > 0 || r.Persona != "" {
		p.Counts = append(p.Counts, htmlCount{"keyinc", fmt.Sprintf("%d key-incompatible", sm.KeyIncompatible)})
	}
	p.Counts = append(p.Counts, htmlCount{"error", plural(sm.Errors, "error", "errors")})
	if sm.Skipped > 0 {
		p.Counts = append(p.Counts, htmlCount{"skip", fmt.Sprintf("%d skipped", sm.Skipped)})
	}
	if !r.Started.IsZero() {
		p.Started = r.Started.UTC().Format("2006-01-02 15:04:05 MST")
	}
	if r.Duration > 0 {
		p.Duration = r.Duration.Round(time.Millisecond).String()
	}
	rows, cell := matrix(r)
	used := map[string]int{}
	byCase := map[*result.Case]*htmlCase{}
	for _, id := range rows {
		row := htmlRow{ID: id, Title: rowTitle(cell[id])}
		for _, v := range p.Versions {
			c := cell[id][v]
			if c == nil {
				row.Cells = append(row.Cells, htmlCell{Class: "none", Symbol: htmlSymbols["none"], Tip: v + ": not in this run"})
				continue
			}
			hc := newHTMLCase(c, used)
			byCase[c] = hc
			p.Cases = append(p.Cases, hc)
			tip := v + ": " + verdictWord(c.Verdict)
			switch passKind(c) {
			case "worked":
				tip += ": worked as the document says"
			case "refused":
				tip += ": refused as the document says"
			}
			if _, s := failingStep(c); s != nil {
				tip += fmt.Sprintf(": expected %s, observed %s", s.Expected, s.Observed)
			}
			row.Cells = append(row.Cells, htmlCell{Case: hc, Class: hc.Class, Symbol: hc.Symbol, Tip: tip})
		}
		p.Rows = append(p.Rows, row)
	}
	for _, g := range groupFailures(casesWith(r, result.Fail)) {
		i, st := failingStep(g.first)
		p.Failures = append(p.Failures, htmlFailure{First: byCase[g.first], Versions: g.versions, Step: st, N: i + 1})
	}
	// Problems first: that is what the reader came for; passes follow for reference.
	sort.SliceStable(p.Cases, func(i, j int) bool {
		return p.Cases[i].Verdict != result.Pass && p.Cases[j].Verdict == result.Pass
	})
	for _, kg := range keyGroups(r) {
		g := htmlKeyGroup{Cause: kg.Cause}
		for _, c := range kg.Cases {
			g.Cases = append(g.Cases, byCase[c])
		}
		p.KeyGroups = append(p.KeyGroups, g)
	}
	for _, hc := range p.Cases {
		if unknownVerdict(hc.Case) {
			p.Errors = append(p.Errors, hc)
		}
		if hc.Verdict == result.Skipped {
			p.Skipped = append(p.Skipped, hc)
		}
	}
	// Control characters are not allowed in HTML text and only ever come from data (a key's
	// answer, a catalog file): drop them from the rendered page rather than from every field.
	var b strings.Builder
	if err := page.Execute(&b, p); err != nil {
		return fmt.Errorf("html: %w", err)
	}
	_, err := io.WriteString(w, dropControls(b.String()))
	return err
}

func newHTMLCase(c *result.Case, used map[string]int) *htmlCase {
	hc := &htmlCase{Case: c, Anchor: anchor(c, used), Class: cssClass(c)}
	hc.Symbol = htmlSymbols[hc.Class]
	if passKind(c) == "refused" {
		hc.Class, hc.Symbol = "pass refused", htmlSymbols["refused"]
	}
	fi, _ := failingStep(c)
	for i, s := range c.Steps {
		if s == nil {
			continue
		}
		class := "pass"
		switch s.Verdict {
		case result.Pass, "":
		case result.Fail:
			class = "fail"
		case result.KeyIncompatible:
			class = "keyinc"
		default:
			class = "error"
		}
		hc.Steps = append(hc.Steps, htmlStep{Step: s, N: i + 1, Class: class, Failing: i == fi})
	}
	return hc
}

// anchor builds a fragment id from the scenario id and version: only safe characters, and
// unique even when two hostile ids clean up to the same text.
func anchor(c *result.Case, used map[string]int) string {
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
				b.WriteRune(r)
			default:
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	a := "case-" + clean(c.ID) + "--" + clean(c.Version)
	used[a]++
	if n := used[a]; n > 1 {
		a += fmt.Sprintf("-%d", n)
	}
	return a
}
