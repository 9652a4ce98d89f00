package report

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/scenarios/result"
)

// Progress shows how far a run is while it runs: on a terminal one line rewritten in place
// ("[ 12/240]  ✓ 11 ✗ 1  multi-account-lock-screen 11-24H2"), elsewhere one plain line per
// finished case, so CI logs stay readable. It is safe for concurrent use by parallel workers.
type Progress struct {
	TTY   bool // rewrite a single line with \r; NewProgress sets it when w is a terminal
	ASCII bool // ASCII counters instead of ✓ ✗
	Width int  // columns of the single line; 0 means 100

	mu                          sync.Mutex
	w                           io.Writer
	total, done                 int
	pass, fail, keyinc, errored int
	running                     map[*result.Case]bool
	current                     string
	dirty                       bool // a \r line is on screen and needs a newline before other output
	now                         func() time.Time
	start                       time.Time

	skipped int // cases not run on purpose (result.Skipped)
}

// NewProgress returns a display of total cases writing to w.
func NewProgress(w io.Writer, total int) *Progress {
	return &Progress{w: w, total: total, TTY: IsTerminal(w), running: map[*result.Case]bool{}, now: time.Now}
}

// Start notes that c began; on a terminal it becomes the case shown as current.
func (p *Progress) Start(c *result.Case) {
	if c == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.running[c] = true
	p.current = c.ID + " " + c.Version
	if p.TTY {
		p.redraw()
	}
}

// Update records that c finished and that done of total cases are finished. Its shape matches a
// runner's progress callback: pass p.Update as func(done, total int, c *result.Case).
func (p *Progress) Update(done, total int, c *result.Case) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.update(done, total, c)
}

func (p *Progress) update(done, total int, c *result.Case) {
	p.init()
	p.done, p.total = done, max(total, done)
	if c == nil {
		if p.TTY {
			p.redraw()
		}
		return
	}
	delete(p.running, c)
	switch c.Verdict {
	case result.Pass:
		p.pass++
	case result.Fail:
		p.fail++
	case result.KeyIncompatible:
		p.keyinc++
	case result.Skipped:
		p.skipped++
	default:
		p.errored++
	}
	if !p.TTY {
		fmt.Fprintf(p.w, "%s %-16s %s\n", p.counter(), verdictWord(c.Verdict), oneLine(dropControls(c.ID+" "+c.Version)))
		return
	}
	p.current = c.ID + " " + c.Version
	// Failures are worth keeping on screen: print them above the rewritten line.
	if c.Verdict != result.Pass {
		p.clear()
		fmt.Fprintf(p.w, "%s\n", p.fit(fmt.Sprintf("%s %s %s: %s", p.mark(c), c.ID, c.Version, verdictWord(c.Verdict))))
	}
	p.redraw()
}

// Done records that c finished, counting it as the next done case.
func (p *Progress) Done(c *result.Case) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.update(p.done+1, p.total, c)
}

// Finish ends the display: the in-place line is completed with a newline and elapsed time.
func (p *Progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	if !p.TTY {
		return
	}
	p.current = "done in " + p.now().Sub(p.start).Round(time.Millisecond).String()
	p.redraw()
	fmt.Fprint(p.w, "\n")
	p.dirty = false
}

func (p *Progress) init() {
	if p.running == nil {
		p.running = map[*result.Case]bool{}
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.start.IsZero() {
		p.start = p.now()
	}
}

func (p *Progress) counter() string {
	n := len(fmt.Sprint(p.total))
	return fmt.Sprintf("[%*d/%d]", n, p.done, p.total)
}

func (p *Progress) mark(c *result.Case) string {
	g := unicodeGlyphs
	if p.ASCII {
		g = asciiGlyphs
	}
	switch cssClass(c) {
	case "pass":
		return g.pass
	case "fail":
		return g.fail
	case "keyinc":
		return g.keyinc
	case "skip":
		return g.skip
	}
	return g.err
}

func (p *Progress) line() string {
	g := unicodeGlyphs
	if p.ASCII {
		g = asciiGlyphs
	}
	pct := 0
	if p.total > 0 {
		pct = p.done * 100 / p.total
	}
	s := fmt.Sprintf("%s %3d%%  %s %d  %s %d", p.counter(), pct, g.pass, p.pass, g.fail, p.fail)
	if p.keyinc > 0 {
		s += fmt.Sprintf("  %s %d", g.keyinc, p.keyinc)
	}
	if p.errored > 0 {
		s += fmt.Sprintf("  %s %d", g.err, p.errored)
	}
	if p.skipped > 0 {
		s += fmt.Sprintf("  %s %d", g.skip, p.skipped)
	}
	if p.current != "" {
		s += "  " + p.current
	}
	if n := len(p.running); n > 1 {
		s += fmt.Sprintf(" (+%d running)", n-1)
	}
	return p.fit(s)
}

// fit makes s one line that fits the width, without control characters from case data.
func (p *Progress) fit(s string) string {
	ell := unicodeGlyphs.ellipsis
	if p.ASCII {
		ell = asciiGlyphs.ellipsis
		s = asciiFold(s)
	}
	w := p.Width
	if w <= 0 {
		w = 100
	}
	s = strings.NewReplacer("\n", " ", "\t", " ").Replace(dropControls(s))
	return truncate(s, w-1, ell)
}

// redraw rewrites the line in place; \x1b[K clears what a longer previous line left behind.
func (p *Progress) redraw() {
	fmt.Fprintf(p.w, "\r%s\x1b[K", p.line())
	p.dirty = true
}

func (p *Progress) clear() {
	if p.dirty {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.dirty = false
	}
}
