package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// TextOptions choose what WriteText shows.
type TextOptions struct {
	// All shows every difference, not only the first.
	All bool
	// Steps shows every step, with what was re-derived.
	Steps bool
}

// WriteText writes the replay for a person: each group's key and set-up, the steps that were not
// replayable and why, the first difference (every one with All) and a summary line.
func WriteText(w io.Writer, r *Result, o TextOptions) error {
	ew := &errWriter{w: w}
	byGroup := map[string][]*StepResult{}
	for _, s := range r.Steps {
		byGroup[s.Group] = append(byGroup[s.Group], s)
	}
	shownDiff := false
	for _, g := range r.Groups {
		head := "key: " + g.Key
		if g.Label != "" {
			head = g.Label + " · " + head
		}
		if g.Fresh {
			head += " (fresh)"
		}
		ew.printf("%s\n", head)
		for _, l := range g.SetUp {
			ew.printf("  set-up: %s\n", l)
		}
		for _, s := range byGroup[g.Label] {
			switch {
			case s.Verdict == Different || s.Verdict == Failed:
				if shownDiff && !o.All {
					if o.Steps {
						ew.printf("  %s\n", stepLine(s))
					}
					continue
				}
				shownDiff = true
				ew.printf("  %s\n", stepLine(s))
				for _, d := range s.Diffs {
					ew.printf("      ≠ %s\n", d)
				}
				writeDetails(ew, s)
			case s.Verdict == NotReplayable:
				ew.printf("  %s\n      why: %s\n", stepLine(s), s.Reason)
			case o.Steps:
				ew.printf("  %s\n", stepLine(s))
				writeDetails(ew, s)
			}
		}
	}
	ew.printf("\n%d steps: %d same, %d different, %d not replayable, %d errors; %d re-derived\n",
		len(r.Steps), r.Same, r.Different, r.NotReplayable, r.Errors, r.Rederived)
	if f := r.FirstDifference(); f != nil {
		what := f.Reason
		if len(f.Diffs) > 0 {
			what = f.Diffs[0].String()
		}
		ew.printf("FIRST DIFFERENCE %s: %s\n", stepName(f), what)
	} else if r.Same > 0 {
		ew.printf("SAME: every replayed step answered as the recorded key did\n")
	}
	return ew.err
}

func stepName(s *StepResult) string {
	if s.Src == 0 && s.N == 0 {
		return fmt.Sprintf("#%d [trace line %d] %s", s.Index, s.Line, s.Command)
	}
	return fmt.Sprintf("#%d [src %d #%d, trace line %d] %s", s.Index, s.Src, s.N, s.Line, s.Command)
}

func stepLine(s *StepResult) string {
	status := s.Recorded
	if s.Replayed != "" && s.Replayed != s.Recorded {
		status = s.Recorded + " → " + s.Replayed
	}
	v := strings.ToUpper(s.Verdict)
	if s.Verdict == Same {
		v = "same"
	}
	line := fmt.Sprintf("%s  %s  %s", stepName(s), status, v)
	if len(s.Derived) > 0 {
		line += " · re-derived"
	}
	return line
}

func writeDetails(ew *errWriter, s *StepResult) {
	if s.Verdict == Failed && s.Reason != "" {
		ew.printf("      error: %s\n", s.Reason)
	}
	for _, d := range s.Derived {
		ew.printf("      re-derived: %s\n", d)
	}
	for _, c := range s.Checks {
		ew.printf("      ✓ %s\n", c)
	}
	for _, n := range s.Notes {
		ew.printf("      note: %s\n", n)
	}
}

// WriteJSON writes the result as one JSON document.
func WriteJSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(struct {
		OK bool `json:"ok"`
		*Result
	}{r.OK(), r})
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, a ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, a...)
	}
}
