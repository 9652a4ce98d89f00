// Package report shows a scenario run (a *result.Run) to people and to machines: a terminal matrix
// with failures, a progress line, Markdown, and files in JUnit XML, JSON and self-contained HTML.
// Every renderer reads the same run and never changes it.
package report

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/scenarios/result"
)

// Formats lists the file extensions WriteFile understands.
var Formats = []string{".xml", ".json", ".html", ".htm", ".md"}

// WriteFile writes r to path in the format its extension names (see Formats). The file is written
// to a temporary sibling first and renamed, so a CI job never picks up half a report.
func WriteFile(path string, r *result.Run) error {
	if r == nil {
		return fmt.Errorf("report %s: no run to write", path)
	}
	var write func(f *os.File) error
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".xml":
		write = func(f *os.File) error { return JUnit(f, r) }
	case ".json":
		write = func(f *os.File) error { return JSON(f, r) }
	case ".html", ".htm":
		write = func(f *os.File) error { return HTML(f, r) }
	case ".md":
		write = func(f *os.File) error { return Markdown(f, r) }
	default:
		return fmt.Errorf("report %s: unknown format %q (supported: %s)", path, ext, strings.Join(Formats, ", "))
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}

// failingStep is the step that decided a case's failure: the first whose verdict is not a pass.
// A case can fail with every step passing (the runner judged the case as a whole); then nil.
func failingStep(c *result.Case) (int, *result.Step) {
	for i, s := range c.Steps {
		if s != nil && s.Verdict != "" && s.Verdict != result.Pass {
			return i, s
		}
	}
	return -1, nil
}

// lastExchanges returns at most n exchanges from the end of s: the ones that led to the answer.
func lastExchanges(s *result.Step, n int) []result.Exchange {
	if s == nil || n <= 0 {
		return nil
	}
	if len(s.Exchanges) <= n {
		return s.Exchanges
	}
	return s.Exchanges[len(s.Exchanges)-n:]
}

// casesWith returns the cases with verdict v, in run order.
func casesWith(r *result.Run, v result.Verdict) []*result.Case {
	var out []*result.Case
	for _, c := range r.Cases {
		if c != nil && c.Verdict == v {
			out = append(out, c)
		}
	}
	return out
}

// unknownVerdict reports whether the case counts as an error in result.Summary
// (error, or any verdict this package does not know).
func unknownVerdict(c *result.Case) bool {
	switch c.Verdict {
	case result.Pass, result.Fail, result.KeyIncompatible, result.Skipped:
		return false
	}
	return true
}

// keyGroup gathers key-incompatible cases by the reason the key gives, so a vendor reads
// "this key breaks these cases, because …" once per cause.
type keyGroup struct {
	Cause string
	Cases []*result.Case
}

func keyGroups(r *result.Run) []keyGroup {
	idx := map[string]int{}
	var out []keyGroup
	for _, c := range casesWith(r, result.KeyIncompatible) {
		cause := strings.TrimSpace(c.KeyCause)
		if cause == "" {
			cause = "cause not stated"
		}
		i, ok := idx[cause]
		if !ok {
			i = len(out)
			idx[cause] = i
			out = append(out, keyGroup{Cause: cause})
		}
		out[i].Cases = append(out[i].Cases, c)
	}
	// The cause that breaks most cases first: that is what a vendor fixes first.
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].Cases) > len(out[j].Cases) })
	return out
}

// versionsOf lists the run's versions, adding any a case uses that the run did not declare,
// so no case silently drops out of the matrix.
func versionsOf(r *result.Run) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range r.Versions {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	for _, c := range r.Cases {
		if c != nil && !seen[c.Version] {
			seen[c.Version] = true
			out = append(out, c.Version)
		}
	}
	return out
}

// matrix is result.Run.Matrix with nil cases skipped.
func matrix(r *result.Run) ([]string, map[string]map[string]*result.Case) {
	clean := &result.Run{Versions: r.Versions}
	for _, c := range r.Cases {
		if c != nil {
			clean.Cases = append(clean.Cases, c)
		}
	}
	return clean.Matrix()
}

// rowTitle is the title of a scenario row: the first non-empty title among its cases.
func rowTitle(cells map[string]*result.Case) string {
	var vs []string
	for v := range cells {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	for _, v := range vs {
		if t := cells[v].Title; t != "" {
			return t
		}
	}
	return ""
}

// verdictWord is the verdict as a short lower-case word for people.
func verdictWord(v result.Verdict) string {
	switch v {
	case result.Pass:
		return "pass"
	case result.Fail:
		return "fail"
	case result.KeyIncompatible:
		return "key-incompatible"
	case result.Error:
		return "error"
	case result.Skipped:
		return "skipped"
	case "":
		return "no verdict"
	}
	return string(v)
}

// cssClass is the verdict as a class name; unknown verdicts render as errors.
func cssClass(c *result.Case) string {
	if c == nil {
		return "none"
	}
	switch c.Verdict {
	case result.Pass:
		return "pass"
	case result.Fail:
		return "fail"
	case result.KeyIncompatible:
		return "keyinc"
	case result.Skipped:
		return "skip"
	}
	return "error"
}

// passKind splits passing cells: "worked" (what the document says works did) or "refused"
// (Windows refused as the document says); "" for other verdicts.
func passKind(c *result.Case) string {
	if cssClass(c) != "pass" {
		return ""
	}
	if c.Refused() {
		return "refused"
	}
	return "worked"
}

// summaryLine is the one-line verdict of the run.
func summaryLine(r *result.Run) string {
	s := r.Summary()
	word := "PASS"
	if !r.OK() {
		word = "FAIL"
	}
	if s.Total == 0 {
		word = "EMPTY"
	}
	parts := []string{fmt.Sprintf("%d passed", s.Passed), fmt.Sprintf("%d failed", s.Failed)}
	if s.KeyIncompatible > 0 || r.Persona != "" {
		parts = append(parts, fmt.Sprintf("%d key-incompatible", s.KeyIncompatible))
	}
	parts = append(parts, plural(s.Errors, "error", "errors"))
	if s.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", s.Skipped))
	}
	line := fmt.Sprintf("%s  %d cases: %s", word, s.Total, strings.Join(parts, ", "))
	if r.Duration > 0 {
		line += " in " + r.Duration.Round(1e6).String()
	}
	return line
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// withoutNil returns r, or a shallow copy without nil cases: result.Run.Summary would trip on them.
func withoutNil(r *result.Run) *result.Run {
	for _, c := range r.Cases {
		if c == nil {
			cp := *r
			cp.Cases = nil
			for _, c := range r.Cases {
				if c != nil {
					cp.Cases = append(cp.Cases, c)
				}
			}
			return &cp
		}
	}
	return r
}

// oneLine folds whitespace so free text fits a single line of a table or message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
