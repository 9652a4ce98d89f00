package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/fidolab/fidolab/scenarios/result"
)

// Markdown writes the matrix and the failures as GitHub-flavoured Markdown tables, for READMEs,
// docs and merge-request comments.
func Markdown(w io.Writer, r *result.Run) error {
	if r == nil {
		return fmt.Errorf("report: no run")
	}
	r = withoutNil(r)
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "## fidolab run: %s\n\n", mdEscape(summaryLine(r)))
	var meta []string
	for _, kv := range [][2]string{{"target", r.Target}, {"key", r.Key}, {"persona", r.Persona}} {
		if kv[1] != "" {
			meta = append(meta, fmt.Sprintf("%s `%s`", kv[0], mdCode(kv[1])))
		}
	}
	if !r.Started.IsZero() {
		meta = append(meta, "started "+r.Started.UTC().Format("2006-01-02 15:04 MST"))
	}
	if len(meta) > 0 {
		fmt.Fprintf(b, "%s\n\n", strings.Join(meta, " · "))
	}

	rows, cell := matrix(r)
	vs := versionsOf(r)
	if len(rows) > 0 {
		b.WriteString("| scenario |")
		for _, v := range vs {
			fmt.Fprintf(b, " %s |", mdEscape(v))
		}
		b.WriteString("\n|---|")
		for range vs {
			b.WriteString(":-:|")
		}
		b.WriteString("\n")
		for _, id := range rows {
			fmt.Fprintf(b, "| `%s` |", mdCode(id))
			for _, v := range vs {
				fmt.Fprintf(b, " %s |", mdSymbol(cell[id][v]))
			}
			b.WriteString("\n")
		}
		b.WriteString("\n✓ worked · ⊘ refused (both as the document says) · ✗ fail · ! key-incompatible · ? error (could not run) · – not in this run\n")
	}

	if fails := casesWith(r, result.Fail); len(fails) > 0 {
		fmt.Fprintf(b, "\n### Failures (%d)\n\n", len(fails))
		b.WriteString("| scenario | versions | step | expected | observed |\n|---|---|---|---|---|\n")
		for _, g := range groupFailures(fails) {
			step, exp, obs := "", "", ""
			if i, s := failingStep(g.first); s != nil {
				step = fmt.Sprintf("%d `%s`", i+1, mdCode(s.Action))
				exp, obs = s.Expected.String(), s.Observed.String()+reasonSuffix(s.Observed)
			}
			fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", mdCode(g.first.ID), mdEscape(strings.Join(g.versions, ", ")),
				step, mdEscape(exp), mdEscape(obs))
		}
	}

	if groups := keyGroups(r); len(groups) > 0 {
		fmt.Fprintf(b, "\n### Key-incompatible (%d)\n\n", len(casesWith(r, result.KeyIncompatible)))
		b.WriteString("| cause | scenario | versions | observed |\n|---|---|---|---|\n")
		for _, kg := range groups {
			for _, g := range groupFailures(kg.Cases) {
				obs := ""
				if _, s := failingStep(g.first); s != nil {
					obs = s.Observed.String()
				}
				fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", mdEscape(kg.Cause), mdCode(g.first.ID),
					mdEscape(strings.Join(g.versions, ", ")), mdEscape(obs))
			}
		}
	}

	var errs []*result.Case
	for _, c := range r.Cases {
		if c != nil && unknownVerdict(c) {
			errs = append(errs, c)
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(b, "\n### Errors (%d)\n\n| scenario | versions | error |\n|---|---|---|\n", len(errs))
		for _, g := range groupFailures(errs) {
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", mdCode(g.first.ID), mdEscape(strings.Join(g.versions, ", ")), mdEscape(g.first.Error))
		}
	}
	if skipped := casesWith(r, result.Skipped); len(skipped) > 0 {
		fmt.Fprintf(b, "\n### Skipped (%d)\n\n| scenario | versions | why |\n|---|---|---|\n", len(skipped))
		for _, g := range groupFailures(skipped) {
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", mdCode(g.first.ID), mdEscape(strings.Join(g.versions, ", ")), mdEscape(g.first.Error))
		}
	}
	return b.Flush()
}

func mdSymbol(c *result.Case) string {
	switch cssClass(c) {
	case "pass":
		if c.Refused() {
			return "⊘"
		}
		return "✓"
	case "fail":
		return "**✗**"
	case "keyinc":
		return "**!**"
	case "skip":
		return "↷"
	case "none":
		return "–"
	}
	return "**?**"
}

// mdEscape keeps free text inside one table cell and stops it from becoming markup or raw HTML.
func mdEscape(s string) string {
	s = oneLine(dropControls(s))
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '|', '\\', '`', '*', '_', '[', ']', '<', '>', '#', '~':
			b.WriteByte('\\')
		case '&':
			b.WriteString("&amp;")
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mdCode makes s safe inside a single-backtick code span in a table cell.
// Inside a code span Markdown shows markup as text, so only backticks and pipes need care.
func mdCode(s string) string {
	s = oneLine(dropControls(s))
	s = strings.ReplaceAll(s, "`", "'")
	return strings.ReplaceAll(s, "|", "\\|")
}

// dropControls removes control characters (NUL, ESC…) that would corrupt a terminal or an editor
// showing the file; tabs and newlines stay for oneLine to fold.
func dropControls(s string) string {
	return strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n') || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
