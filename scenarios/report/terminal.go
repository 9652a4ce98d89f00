package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fidolab/fidolab/scenarios/result"
)

// TerminalOptions tune Terminal for the place it prints to.
type TerminalOptions struct {
	ASCII     bool // plain ASCII symbols and rules, for CI logs that mangle UTF-8
	Color     bool // ANSI colours (only for a terminal that shows them)
	Width     int  // columns to fit; 0 means 100
	Exchanges int  // how many of the failing step's last exchanges to show; 0 means 2, <0 none
}

// glyphs are the few characters that differ between the Unicode and the ASCII rendering.
type glyphs struct {
	pass, refused, fail, keyinc, err, none string
	rule, sep, arrow, ellipsis             string
	skip                                   string
}

var (
	unicodeGlyphs = glyphs{"✓", "⊘", "✗", "!", "?", "–", "─", "│", "→", "…", "↷"}
	asciiGlyphs   = glyphs{"ok", "no", "FAIL", "KEY", "ERR", "-", "-", "|", "->", "~", "SKIP"}
)

const (
	ansiReset  = "\x1b[0m"
	ansiBold   = "\x1b[1m"
	ansiDim    = "\x1b[2m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiPurple = "\x1b[35m"
	ansiCyan   = "\x1b[36m"
)

// term carries the options through the rendering of one run.
type term struct {
	w    *bufio.Writer
	o    TerminalOptions
	g    glyphs
	nExc int
}

// Terminal prints the run for a person at a terminal: the matrix of scenarios × Windows versions,
// then the failures (expected vs observed, with the last CTAP exchanges of the failing step), the
// cases the key under test breaks grouped by cause, the cases that could not run, and a summary line.
func Terminal(w io.Writer, r *result.Run, o TerminalOptions) error {
	if r == nil {
		return fmt.Errorf("report: no run")
	}
	r = withoutNil(r)
	t := &term{w: bufio.NewWriter(w), o: o, g: unicodeGlyphs, nExc: o.Exchanges}
	if o.ASCII {
		t.g = asciiGlyphs
	}
	if t.o.Width <= 0 {
		t.o.Width = 100
	}
	if t.nExc == 0 {
		t.nExc = 2
	}
	t.header(r)
	t.matrix(r)
	t.failures(r)
	t.keyIncompatible(r)
	t.errors(r)
	t.skipped(r)
	line := summaryLine(r)
	if len(r.Cases) > 0 {
		t.println()
	}
	code := ansiBold + ansiRed
	if r.OK() && len(r.Cases) > 0 {
		code = ansiBold + ansiGreen
	}
	t.println(t.paint(code, line)) // one line, whatever the width: CI logs grep it
	return t.w.Flush()
}

func (t *term) paint(code, s string) string {
	if !t.o.Color || s == "" {
		return s
	}
	return code + s + ansiReset
}

func (t *term) println(s ...string) {
	line := strings.Join(s, "")
	if t.o.ASCII {
		line = asciiFold(line)
	}
	t.w.WriteString(line + "\n")
}

// text makes data safe to print: control characters go (a key's answer must not drive the
// terminal), and in ASCII mode it is folded before it is measured, as folding can lengthen it.
func (t *term) text(s string) string {
	s = dropControls(s)
	if t.o.ASCII {
		return asciiFold(s)
	}
	return s
}

// asciiFolder spells the typographic characters of catalogs and diagnostic notation in ASCII.
var asciiFolder = strings.NewReplacer("…", "...", "“", `"`, "”", `"`, "‘", "'", "’", "'", "›", ">", "→", "->",
	"–", "-", "—", "-", "×", "x", "\u00a0", " ")

// asciiFold makes s pure ASCII for logs that mangle UTF-8: known characters get their ASCII
// spelling, anything else becomes '?' (ANSI escapes are ASCII and pass through).
func asciiFold(s string) string {
	s = asciiFolder.Replace(s)
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return strings.Map(func(r rune) rune {
				if r >= utf8.RuneSelf {
					return '?'
				}
				return r
			}, s)
		}
	}
	return s
}

// block prints text wrapped to the width: the first line after first, later lines indented.
func (t *term) block(first string, indent int, text, code string) {
	lines := wrap(t.text(text), max(t.o.Width-indent, 20))
	for i, l := range lines {
		if i == 0 {
			t.println(first, t.paint(code, l))
		} else {
			t.println(strings.Repeat(" ", indent), t.paint(code, l))
		}
	}
}

func (t *term) heading(s string) {
	t.println()
	n := t.o.Width - width(s) - 4
	if n < 3 {
		n = 3
	}
	if n > 60 {
		n = 60
	}
	t.println(t.paint(ansiBold, strings.Repeat(t.g.rule, 2)+" "+s+" "+strings.Repeat(t.g.rule, n)))
}

func (t *term) header(r *result.Run) {
	parts := []string{"fidolab run"}
	if r.Target != "" {
		parts = append(parts, "target "+t.text(oneLine(r.Target)))
	}
	if r.Key != "" {
		parts = append(parts, "key "+t.text(oneLine(r.Key)))
	}
	if r.Persona != "" {
		parts = append(parts, "persona "+t.text(oneLine(r.Persona)))
	}
	dot := " · "
	if t.o.ASCII {
		dot = " | "
	}
	line := parts[0]
	for _, p := range parts[1:] {
		if width(line)+width(dot)+width(p) > t.o.Width {
			t.println(t.paint(ansiBold, line))
			line = "  " + p
			continue
		}
		line += dot + p
	}
	t.println(t.paint(ansiBold, line))
	if !r.Started.IsZero() {
		t.println(t.paint(ansiDim, "started "+r.Started.UTC().Format("2006-01-02 15:04:05 MST")))
	}
	t.println()
}

// versionColumns splits "10-1809" into a group ("10") and a column label ("1809") when every
// version has that shape, so ten versions fit in 80 columns under a two-line header.
func versionColumns(vs []string) (groups, labels []string, grouped bool) {
	grouped = len(vs) > 0
	for _, v := range vs {
		g, l, ok := strings.Cut(v, "-")
		if !ok || g == "" || l == "" {
			grouped = false
		}
		groups, labels = append(groups, g), append(labels, l)
	}
	if !grouped {
		return nil, vs, false
	}
	return groups, labels, true
}

func (t *term) symbol(c *result.Case) (string, string) {
	switch cssClass(c) {
	case "pass":
		if c.Refused() {
			return t.g.refused, ansiCyan
		}
		return t.g.pass, ansiGreen
	case "fail":
		return t.g.fail, ansiBold + ansiRed
	case "keyinc":
		return t.g.keyinc, ansiBold + ansiYellow
	case "none":
		return t.g.none, ansiDim
	case "skip":
		return t.g.skip, ansiYellow
	}
	return t.g.err, ansiBold + ansiPurple
}

func (t *term) matrix(r *result.Run) {
	rows, cell := matrix(r)
	vs := versionsOf(r)
	if len(rows) == 0 {
		t.println("no cases ran")
		return
	}
	groups, labels, grouped := versionColumns(vs)
	labels = slices.Clone(labels) // may share vs, which still keys the cells
	for i := range labels {       // version names come from run data too: no control characters
		labels[i] = t.text(labels[i])
	}
	for i := range groups {
		groups[i] = t.text(groups[i])
	}
	colW := make([]int, len(vs))
	matrixW := 0
	for i, l := range labels {
		colW[i] = max(width(l), width(t.g.fail), 3)
		matrixW += colW[i] + 1
		if grouped && i > 0 && groups[i] != groups[i-1] {
			matrixW += 2
		}
	}
	idW := len("scenario")
	for _, id := range rows {
		idW = max(idW, width(t.text(id)))
	}
	idW = min(idW, max(t.o.Width-matrixW-1, 16))

	// pos tracks where the next column begins, to place each group name above its columns.
	var top, head strings.Builder
	top.WriteString(strings.Repeat(" ", idW+1))
	head.WriteString(pad("scenario", idW) + " ")
	pos := idW + 1
	for i, l := range labels {
		if grouped && i > 0 && groups[i] != groups[i-1] {
			head.WriteString(t.g.sep + " ")
			pos += 2
		}
		if grouped && (i == 0 || groups[i] != groups[i-1]) {
			name := "Windows " + groups[i]
			if width(top.String()) > pos-1 {
				name = " " + name
			}
			top.WriteString(strings.Repeat(" ", max(pos-width(top.String()), 0)) + name)
		}
		head.WriteString(center(l, colW[i]) + " ")
		pos += colW[i] + 1
	}
	if grouped {
		t.println(t.paint(ansiBold, strings.TrimRight(top.String(), " ")))
	}
	t.println(t.paint(ansiBold, strings.TrimRight(head.String(), " ")))
	for _, id := range rows {
		var b strings.Builder
		b.WriteString(pad(truncate(t.text(id), idW, t.g.ellipsis), idW) + " ")
		for i, v := range vs {
			if grouped && i > 0 && groups[i] != groups[i-1] {
				b.WriteString(t.paint(ansiDim, t.g.sep) + " ")
			}
			sym, code := t.symbol(cell[id][v])
			b.WriteString(t.paint(code, center(sym, colW[i])) + " ")
		}
		t.println(strings.TrimRight(b.String(), " "))
	}
	s := r.Summary()
	entries := []string{fmt.Sprintf("%s worked (%d)", t.g.pass, s.Worked), fmt.Sprintf("%s refused (%d), both as the document says", t.g.refused, s.Refused),
		t.g.fail + " fail", t.g.keyinc + " key-incompatible", t.g.err + " error (could not run)", t.g.none + " not run"}
	if s.Skipped > 0 {
		entries = append(entries, t.g.skip+" skipped (see why below)")
	}
	t.legend(entries)
}

// legend prints the matrix's symbols, two spaces apart, wrapped between entries to the width.
func (t *term) legend(entries []string) {
	line := ""
	for _, e := range entries {
		if line != "" && width(line)+2+width(e) > t.o.Width {
			t.println(t.paint(ansiDim, line))
			line = ""
		}
		if line != "" {
			line += "  "
		}
		line += e
	}
	if line != "" {
		t.println(t.paint(ansiDim, line))
	}
}

// failureGroup is one scenario failing the same way on several versions: shown once.
type failureGroup struct {
	first    *result.Case
	versions []string
}

func groupFailures(cases []*result.Case) []*failureGroup {
	idx := map[string]*failureGroup{}
	var out []*failureGroup
	for _, c := range cases {
		i, s := failingStep(c)
		key := c.ID + "\x00" + fmt.Sprint(i) + "\x00" + c.KeyCause + "\x00" + c.Error
		if s != nil {
			key += "\x00" + s.Expected.String() + "\x00" + s.Observed.String()
		}
		if g, ok := idx[key]; ok {
			g.versions = append(g.versions, c.Version)
			continue
		}
		g := &failureGroup{first: c, versions: []string{c.Version}}
		idx[key] = g
		out = append(out, g)
	}
	return out
}

func (t *term) failures(r *result.Run) {
	fails := casesWith(r, result.Fail)
	if len(fails) == 0 {
		return
	}
	t.heading(fmt.Sprintf("Failures (%d): observed outcome differs from the document", len(fails)))
	for _, g := range groupFailures(fails) {
		c := g.first
		t.println()
		t.block(t.paint(ansiBold+ansiRed, t.g.fail)+" "+t.paint(ansiBold, t.text(c.ID))+"  ", width(t.g.fail)+1+width(t.text(c.ID))+2,
			strings.Join(g.versions, " "), "")
		t.field("title", c.Title)
		doc := c.DocWords
		if doc != "" {
			doc = "“" + oneLine(doc) + "”"
			if t.o.ASCII {
				doc = `"` + oneLine(c.DocWords) + `"`
			}
		}
		if c.DocSection != "" {
			doc += " (" + oneLine(c.DocSection) + ")"
		}
		t.field("document", doc)
		t.field("file", c.File)
		t.step(c)
	}
}

// field prints "  label     value", wrapping the value under itself.
func (t *term) field(label, value string) { t.fieldc(label, value, "") }

func (t *term) fieldc(label, value, code string) {
	value = strings.TrimSpace(value)
	if value == "" {
		return
	}
	const indent = 12
	lines := wrap(t.text(value), max(t.o.Width-indent, 20))
	for i, l := range lines {
		if i == 0 {
			t.println("  ", t.paint(ansiDim, pad(label, indent-3)), " ", t.paint(code, l))
		} else {
			t.println(strings.Repeat(" ", indent), t.paint(code, l))
		}
	}
}

func (t *term) step(c *result.Case) {
	i, s := failingStep(c)
	if s == nil {
		t.field("verdict", "case failed with every step passing")
		return
	}
	t.field("step", fmt.Sprintf("%d/%d  %s  %s", i+1, len(c.Steps), s.Action, oneLine(s.Detail)))
	t.field("expected", s.Expected.String()+reasonSuffix(s.Expected))
	t.fieldc("observed", s.Observed.String()+reasonSuffix(s.Observed), ansiBold)
	for _, n := range s.Notes {
		t.field("note", n)
	}
	ex := lastExchanges(s, t.nExc)
	if len(ex) == 0 {
		if t.nExc > 0 {
			t.field("exchanges", "none recorded in this step")
		}
		return
	}
	t.field("exchanges", fmt.Sprintf("last %d of %d in this step", len(ex), len(s.Exchanges)))
	for _, e := range ex {
		t.exchange(e)
	}
}

func reasonSuffix(o result.Outcome) string {
	if o.Reason == "" {
		return ""
	}
	return " (" + oneLine(o.Reason) + ")"
}

func (t *term) exchange(e result.Exchange) {
	head := t.text(fmt.Sprintf("%s %s %s", oneLine(e.Command), t.g.arrow, oneLine(e.Status)))
	if e.Duration > 0 {
		head += fmt.Sprintf(" (%s)", e.Duration)
	}
	t.println("    ", t.paint(ansiBold, head))
	for _, part := range []struct{ name, text string }{{"request", e.Request}, {"response", e.Response}} {
		text := strings.TrimRight(part.text, "\n")
		if strings.TrimSpace(text) == "" {
			continue
		}
		lines := strings.Split(text, "\n")
		t.println("      ", t.paint(ansiDim, part.name+":"))
		for _, l := range lines {
			t.println("        ", truncate(t.text(strings.TrimRight(l, " \t\r")), max(t.o.Width-8, 20), t.g.ellipsis))
		}
	}
}

func (t *term) keyIncompatible(r *result.Run) {
	groups := keyGroups(r)
	if len(groups) == 0 {
		return
	}
	who := "the key under test"
	if r.Persona != "" {
		who = "persona " + t.text(oneLine(r.Persona))
	}
	n := len(casesWith(r, result.KeyIncompatible))
	t.heading(fmt.Sprintf("Key-incompatible (%d): %s breaks these cases", n, who))
	for _, kg := range groups {
		t.println()
		t.block(t.paint(ansiBold+ansiYellow, t.g.keyinc)+" ", width(t.g.keyinc)+1, oneLine(kg.Cause), ansiBold)
		for _, g := range groupFailures(kg.Cases) {
			t.block("    "+t.text(g.first.ID)+"  ", 6, strings.Join(g.versions, " "), "")
			if _, s := failingStep(g.first); s != nil {
				t.block("      ", 6, fmt.Sprintf("%s: expected %s, observed %s", s.Action, s.Expected, s.Observed), ansiDim)
			}
		}
	}
}

func (t *term) errors(r *result.Run) {
	var errs []*result.Case
	for _, c := range r.Cases {
		if c != nil && unknownVerdict(c) {
			errs = append(errs, c)
		}
	}
	if len(errs) == 0 {
		return
	}
	t.heading(fmt.Sprintf("Errors (%d): cases that could not run", len(errs)))
	t.println()
	for _, g := range groupFailures(errs) {
		msg := oneLine(g.first.Error)
		if msg == "" {
			msg = "verdict " + verdictWord(g.first.Verdict) + ", no error recorded"
		}
		t.block(t.paint(ansiBold+ansiPurple, t.g.err)+" "+t.paint(ansiBold, t.text(g.first.ID))+"  ", width(t.g.err)+1+width(t.text(g.first.ID))+2,
			strings.Join(g.versions, " "), "")
		t.field("error", msg)
	}
}

// skipped lists the cases not run on purpose, grouped by reason: what a user must allow (or do)
// to run them.
func (t *term) skipped(r *result.Run) {
	cases := casesWith(r, result.Skipped)
	if len(cases) == 0 {
		return
	}
	t.heading(fmt.Sprintf("Skipped (%d): cases not run, and why", len(cases)))
	byReason := map[string][]*result.Case{}
	var reasons []string
	for _, c := range cases {
		if _, ok := byReason[c.Error]; !ok {
			reasons = append(reasons, c.Error)
		}
		byReason[c.Error] = append(byReason[c.Error], c)
	}
	for _, why := range reasons {
		t.println()
		t.block(t.paint(ansiBold+ansiYellow, t.g.skip)+" ", width(t.g.skip)+1, oneLine(why), ansiBold)
		for _, g := range groupFailures(byReason[why]) {
			t.block("    "+t.text(g.first.ID)+"  ", 6, strings.Join(g.versions, " "), "")
		}
	}
}

// width counts runes: the glyphs used here are all one column wide.
func width(s string) int { return utf8.RuneCountInString(s) }

func pad(s string, n int) string {
	if w := width(s); w < n {
		return s + strings.Repeat(" ", n-w)
	}
	return s
}

func center(s string, n int) string {
	w := width(s)
	if w >= n {
		return s
	}
	left := (n - w) / 2
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", n-w-left)
}

func truncate(s string, n int, ellipsis string) string {
	if width(s) <= n {
		return s
	}
	r := []rune(s)
	keep := max(n-width(ellipsis), 0)
	return string(r[:keep]) + ellipsis
}

// wrap breaks s into lines of at most n columns at spaces; a longer word gets a line of its own.
func wrap(s string, n int) []string {
	var lines []string
	var cur string
	for _, word := range strings.Fields(s) {
		switch {
		case cur == "":
			cur = word
		case width(cur)+1+width(word) <= n:
			cur += " " + word
		default:
			lines = append(lines, cur)
			cur = word
		}
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}
