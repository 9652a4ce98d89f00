// Package docs holds the tests that keep README.md and docs/ true: every relative link resolves
// inside the repository (links_test.go), and every fenced code block runs (doctest_test.go). This
// file is the block extractor and the parser of the `<!-- doctest: … -->` annotations; the
// convention is described in docs/contributing.md ("Documentation is tested").
package docs

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Kind is what the test does with a block, decided by the fence's info string.
type Kind string

const (
	KindShell   Kind = "shell"   // sh, bash, shell: run by bash in the file's work directory
	KindConsole Kind = "console" // console: lines "$ cmd" run, the other lines are expected output
	KindPython  Kind = "python"  // python, py: run by python3
	KindGo      Kind = "go"      // go: a whole program (package clause) is built
	KindYAML    Kind = "yaml"    // yaml, yml: a persona or a scenario, loaded by the real parser
	KindJSON    Kind = "json"    // json: must parse
	KindText    Kind = "text"    // no info string, text, output: shown output, not run
	KindOther   Kind = "other"   // any other language (c, xml, ini, bat…): needs `skip`
)

// Block is one fenced code block of a Markdown file.
type Block struct {
	File  string // slash path relative to the repository root
	Line  int    // 1-based line of the opening fence
	Lang  string // first word of the info string, lower case
	Kind  Kind
	Code  string // the contents, with the fence's indentation removed
	Annot Annotation
}

// Name is how a test and a failure message refer to the block.
func (b Block) Name() string { return fmt.Sprintf("%s:%d", b.File, b.Line) }

// Annotation is what a `<!-- doctest: … -->` comment right before a block says about it.
type Annotation struct {
	Present    bool          // a doctest comment was there
	Skip       string        // not run; the reason, which the test prints
	Background bool          // a server: started, left running for the file's later blocks
	WaitFor    string        // background: wait until this path exists (a socket, a file)
	ExitCode   int           // the exit status the block must end with (default 0)
	Error      bool          // yaml: the parser must reject the block
	File       string        // also write the block to this path in the work directory
	Timeout    time.Duration // how long the block may take (default 60 s)
	Persona    bool          // yaml: load as a persona even if it looks like a scenario
	Scenario   bool          // yaml: load as a scenario
	Env        string        // K=V added to the block's environment
	Setup      string        // a shell command run first, unshown: a file the reader already has
}

// annotStart finds a doctest comment (so that a malformed one is an error, not ignored);
// annotWhole parses one.
var (
	annotStart = regexp.MustCompile(`^<!--\s*doctest\b`)
	annotWhole = regexp.MustCompile(`^<!--\s*doctest\s*:(.*)-->$`)
)

// Extract returns the fenced code blocks of a Markdown text, each with the annotation on the last
// non-blank line before its opening fence. A malformed annotation, an annotation that is not
// followed by a block, or an unterminated fence is an error.
func Extract(file, text string) ([]Block, error) {
	lines := strings.Split(text, "\n")
	var blocks []Block
	var pending *Annotation
	pendingLine := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if annotStart.MatchString(trimmed) {
			if pending != nil {
				return nil, fmt.Errorf("%s:%d: doctest comment not followed by a code block", file, pendingLine)
			}
			a, err := ParseAnnotation(trimmed)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", file, i+1, err)
			}
			pending, pendingLine = &a, i+1
			continue
		}
		indent, marker, info, ok := openFence(line)
		if !ok {
			if trimmed != "" && pending != nil {
				return nil, fmt.Errorf("%s:%d: doctest comment not followed by a code block", file, pendingLine)
			}
			continue
		}
		b := Block{File: file, Line: i + 1}
		b.Lang = strings.ToLower(strings.Fields(info + " x")[0])
		if info == "" {
			b.Lang = ""
		}
		b.Kind = kindOf(b.Lang)
		var code []string
		closed := false
		for i++; i < len(lines); i++ {
			l := lines[i]
			if t := strings.TrimSpace(l); strings.HasPrefix(t, marker) && strings.Trim(t, marker[:1]) == "" && len(l)-len(strings.TrimLeft(l, " ")) < indent+4 {
				closed = true
				break
			}
			code = append(code, dedent(l, indent))
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: code block never closed", file, b.Line)
		}
		b.Code = strings.Join(code, "\n")
		if len(code) > 0 {
			b.Code += "\n"
		}
		if pending != nil {
			b.Annot = *pending
			pending = nil
		}
		blocks = append(blocks, b)
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: doctest comment not followed by a code block", file, pendingLine)
	}
	return blocks, nil
}

// openFence reports whether line opens a fenced block (``` or ~~~, at most 3 spaces of indentation
// outside a list; list items indent more, so any indentation is accepted).
func openFence(line string) (indent int, marker, info string, ok bool) {
	rest := strings.TrimLeft(line, " ")
	indent = len(line) - len(rest)
	for _, c := range []string{"```", "~~~"} {
		if strings.HasPrefix(rest, c) {
			n := len(rest) - len(strings.TrimLeft(rest, c[:1]))
			info = strings.TrimSpace(rest[n:])
			if c == "```" && strings.Contains(info, "`") {
				return 0, "", "", false // an inline code span, not a fence
			}
			return indent, rest[:n], info, true
		}
	}
	return 0, "", "", false
}

// dedent removes up to n leading spaces.
func dedent(l string, n int) string {
	for k := 0; k < n && strings.HasPrefix(l, " "); k++ {
		l = l[1:]
	}
	return l
}

func kindOf(lang string) Kind {
	switch lang {
	case "sh", "bash", "shell":
		return KindShell
	case "console":
		return KindConsole
	case "python", "py", "python3":
		return KindPython
	case "go":
		return KindGo
	case "yaml", "yml":
		return KindYAML
	case "json":
		return KindJSON
	case "", "text", "txt", "output", "plain":
		return KindText
	}
	return KindOther
}

// ParseAnnotation parses one `<!-- doctest: directive … -->` comment. Directives are space
// separated, values optionally double-quoted (with \" and \\ escapes):
//
//	skip reason="…"     not run; the reason is printed (a reason is required)
//	background          a server the later blocks of the file use; stopped when the file is done
//	wait-for=PATH       with background: wait until PATH (relative to the work directory) exists
//	expect-exit=N       the block must exit with status N
//	expect-error        yaml: the real parser must reject the block
//	file=NAME           also write the block's text to NAME in the work directory
//	timeout=DURATION    at most this long (default 60s)
//	persona | scenario  yaml: which parser loads it (default: a scenario if it has a top-level id:)
//	env=K=V             an environment variable for the block (GOFLAGS=-benchtime=1x: a benchmark once)
//	setup="CMD"         a shell command run before the block: what the reader is assumed to have
func ParseAnnotation(s string) (Annotation, error) {
	m := annotWhole.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return Annotation{}, fmt.Errorf("doctest comment must be one line: <!-- doctest: … -->")
	}
	body := strings.TrimSpace(m[1])
	words, err := splitWords(body)
	if err != nil {
		return Annotation{}, err
	}
	if len(words) == 0 {
		return Annotation{}, fmt.Errorf("empty doctest comment")
	}
	a := Annotation{Present: true}
	seen := map[string]bool{}
	skip := false
	for _, w := range words {
		key, val, hasVal := strings.Cut(w, "=")
		if seen[key] {
			return Annotation{}, fmt.Errorf("doctest: %s given twice", key)
		}
		seen[key] = true
		needVal := func() error {
			if !hasVal || val == "" {
				return fmt.Errorf("doctest: %s needs a value (%s=…)", key, key)
			}
			return nil
		}
		noVal := func() error {
			if hasVal {
				return fmt.Errorf("doctest: %s takes no value", key)
			}
			return nil
		}
		switch key {
		case "skip":
			err = noVal()
			skip = true
		case "reason":
			if err = needVal(); err == nil {
				a.Skip = val
			}
		case "background":
			err = noVal()
			a.Background = true
		case "wait-for":
			if err = needVal(); err == nil {
				a.WaitFor = val
			}
		case "expect-exit":
			if err = needVal(); err == nil {
				a.ExitCode, err = strconv.Atoi(val)
				if err != nil || a.ExitCode < 0 || a.ExitCode > 255 {
					err = fmt.Errorf("doctest: expect-exit=%q: want 0..255", val)
				}
			}
		case "expect-error":
			err = noVal()
			a.Error = true
		case "file":
			if err = needVal(); err == nil {
				if strings.HasPrefix(val, "/") || strings.Contains("/"+val+"/", "/../") {
					err = fmt.Errorf("doctest: file=%q must stay inside the work directory", val)
				}
				a.File = val
			}
		case "timeout":
			if err = needVal(); err == nil {
				a.Timeout, err = time.ParseDuration(val)
				if err != nil || a.Timeout <= 0 || a.Timeout > 10*time.Minute {
					err = fmt.Errorf("doctest: timeout=%q: want a duration up to 10m", val)
				}
			}
		case "env":
			if err = needVal(); err == nil {
				if k, _, ok := strings.Cut(val, "="); !ok || k == "" || strings.ContainsAny(k, " \t") {
					err = fmt.Errorf("doctest: env=%q: want env=NAME=VALUE", val)
				}
				a.Env = val
			}
		case "setup":
			if err = needVal(); err == nil {
				a.Setup = val
			}
		case "persona":
			err = noVal()
			a.Persona = true
		case "scenario":
			err = noVal()
			a.Scenario = true
		default:
			err = fmt.Errorf("doctest: unknown directive %q (known: skip reason=, background, wait-for=, expect-exit=, expect-error, file=, timeout=, persona, scenario, env=, setup=)", key)
		}
		if err != nil {
			return Annotation{}, err
		}
	}
	switch {
	case skip && a.Skip == "":
		return Annotation{}, fmt.Errorf(`doctest: skip needs a reason="…" the test prints`)
	case !skip && a.Skip != "":
		return Annotation{}, fmt.Errorf("doctest: reason= belongs to skip")
	case a.WaitFor != "" && !a.Background:
		return Annotation{}, fmt.Errorf("doctest: wait-for= belongs to background")
	case a.Persona && a.Scenario:
		return Annotation{}, fmt.Errorf("doctest: persona and scenario are exclusive")
	case skip && len(words) > 2:
		return Annotation{}, fmt.Errorf("doctest: skip takes only a reason")
	case a.Background && (a.ExitCode != 0 || a.Error):
		return Annotation{}, fmt.Errorf("doctest: a background block has no exit status to expect")
	}
	return a, nil
}

// splitWords splits on spaces outside double quotes; key="a b" becomes key=a b.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote && c == '\\':
			if i+1 >= len(s) {
				return nil, fmt.Errorf("doctest: dangling \\ in %q", s)
			}
			i++
			cur.WriteByte(s[i])
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			cur.WriteByte(c)
		case c == '"':
			inQuote, inWord = true, true
		case c < 0x80 && unicode.IsSpace(rune(c)):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inQuote {
		return nil, fmt.Errorf("doctest: unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
