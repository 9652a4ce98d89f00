package probe

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strings"
)

// WriteJSON writes the report as one JSON document (schemaVersion 1, docs/probe.md).
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// ReadJSON reads a report WriteJSON wrote; a newer schema is refused.
func ReadJSON(rd io.Reader) (*Report, error) {
	dec := json.NewDecoder(io.LimitReader(rd, 64<<20))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("probe report: %w", err)
	}
	if r.SchemaVersion < 1 || r.SchemaVersion > SchemaVersion {
		return nil, fmt.Errorf("probe report: schemaVersion %d (this fidolab reads %d)", r.SchemaVersion, SchemaVersion)
	}
	for i, c := range r.Checks {
		switch c.Status {
		case Pass, Info, Warn, Fail, Skip:
		default:
			return nil, fmt.Errorf("probe report: check %d (%s): unknown status %q", i+1, c.ID, c.Status)
		}
	}
	return &r, nil
}

var marks = map[Status]string{Pass: "✓", Info: "·", Warn: "!", Fail: "✗", Skip: "–"}
var asciiMarks = map[Status]string{Pass: "ok", Info: "..", Warn: "!!", Fail: "XX", Skip: "--"}

// TextOptions tune WriteText.
type TextOptions struct {
	ASCII bool
	// Verbose shows what Windows needs for every check.
	Verbose bool
}

// WriteText writes the report for a terminal.
func WriteText(w io.Writer, r *Report, o TextOptions) error {
	var b strings.Builder
	m := marks
	if o.ASCII {
		m = asciiMarks
	}
	fmt.Fprintf(&b, "fidolab probe · %s\n", nonEmpty(r.Key.Spec, r.Key.Description))
	var id []string
	if r.Key.USB != "" {
		id = append(id, "USB "+r.Key.USB)
	}
	if r.Key.Product != "" {
		id = append(id, r.Key.Product)
	}
	if r.Key.AAGUID != "" {
		id = append(id, "AAGUID "+r.Key.AAGUID)
	}
	if r.Key.Device != "" {
		id = append(id, "device "+r.Key.Device)
	}
	if len(id) > 0 {
		fmt.Fprintf(&b, "%s\n", strings.Join(id, " · "))
	}
	if !r.Destructive {
		b.WriteString("not destructive: checks that reset the key, set a PIN or fill it were skipped (--destructive runs them)\n")
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "%s %-52s %s\n", m[c.Status], c.Title, nonEmpty(c.Observed, c.Skipped))
		if o.Verbose && c.Need != "" {
			fmt.Fprintf(&b, "     needs: %s\n", c.Need)
		}
		if c.Status != Skip || o.Verbose {
			for _, d := range c.Details {
				fmt.Fprintf(&b, "     %s\n", d)
			}
		}
	}
	if r.Catalog != nil {
		cr := r.Catalog
		fmt.Fprintf(&b, "\ncatalog on this key: %d cases: %d passed, %d failed, %d key-incompatible, %d skipped, %d errors\n",
			cr.Total, cr.Passed, cr.Failed, cr.KeyIncompatible, cr.Skipped, cr.Errors)
		if cr.Note != "" {
			fmt.Fprintf(&b, "  %s\n", cr.Note)
		}
		// Cases failing for one cause are one line: a vendor reads causes, not 140 case names.
		type group struct {
			verdict, cause string
			ids            []string
		}
		var groups []*group
		byKey := map[string]*group{}
		for _, c := range cr.Cases {
			if c.Verdict == "pass" || c.Verdict == "skipped" && cr.Skipped == cr.Total {
				continue
			}
			k := c.Verdict + "\x00" + c.Cause
			g := byKey[k]
			if g == nil {
				g = &group{verdict: c.Verdict, cause: c.Cause}
				byKey[k] = g
				groups = append(groups, g)
			}
			g.ids = append(g.ids, c.ID+"@"+c.Version)
		}
		for _, g := range groups {
			ids := g.ids
			more := ""
			if len(ids) > 3 {
				ids, more = ids[:3], fmt.Sprintf(", … (%d more)", len(g.ids)-3)
			}
			fmt.Fprintf(&b, "  %s ×%d: %s\n      %s%s\n", g.verdict, len(g.ids), nonEmpty(g.cause, "(no cause given)"), strings.Join(ids, ", "), more)
		}
		if cr.Skipped > 0 && cr.Skipped == cr.Total && len(cr.Cases) > 0 {
			fmt.Fprintf(&b, "  every case skipped: %s\n", cr.Cases[0].Cause)
		}
	}
	if r.Left != "" {
		fmt.Fprintf(&b, "\nthe key: %s\n", r.Left)
	}
	fmt.Fprintf(&b, "%s: %s\n", strings.ToUpper(firstWord(r.Verdict)), r.Verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return strings.TrimSuffix(w, ",")
}

//go:embed page.html.tmpl
var pageTmpl string

var page = template.Must(template.New("probe").Funcs(template.FuncMap{
	"join": strings.Join,
	"verdictClass": func(v string) string {
		switch {
		case strings.HasPrefix(v, "incompatible"):
			return "fail"
		case strings.Contains(v, "warnings") || strings.Contains(v, "skipped"):
			return "warn"
		}
		return "pass"
	},
	"caseClass": func(v string) string {
		switch v {
		case "pass":
			return "pass"
		case "fail":
			return "fail"
		case "key-incompatible":
			return "warn"
		case "skipped":
			return "skip"
		}
		return "info"
	},
}).Parse(pageTmpl))

// WriteHTML writes the report as one self-contained HTML page.
func WriteHTML(w io.Writer, r *Report) error { return page.Execute(w, r) }
