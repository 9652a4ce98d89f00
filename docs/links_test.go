package docs

import (
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/stretchr/testify/require"
)

// TestLinksResolve: a reader of the repository can follow every citation of README.md and docs/:
// every relative link, and every path of the repository named in a code span, resolves inside it.
func TestLinksResolve(t *testing.T) {
	t.Parallel()
	files := []string{"README.md"}
	require.NoError(t, fs.WalkDir(os.DirFS(".."), "docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	}))
	require.Contains(t, files, "docs/windows-model.md")
	problems, links := check(t, "..", files)
	require.Empty(t, problems, "links that do not resolve inside the repository")
	require.Greater(t, links, 20, "the links were found")
}

// check reads files (slash paths relative to root) and returns every link or mention that does not
// resolve inside root, and how many relative links it followed.
func check(t *testing.T, root string, files []string) (problems []string, links int) {
	t.Helper()
	for _, name := range files {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		require.NoError(t, err)
		text := string(b)
		for i, line := range strings.Split(text, "\n") {
			// The project's shared folder sits beside a checkout, not in it: a reader does not have it.
			if outside.MatchString(line) {
				problems = append(problems, fmt.Sprintf("%s:%d: cites a file outside the repository: %s", name, i+1, strings.TrimSpace(line)))
			}
		}
		for _, c := range citedPaths(root, text) {
			if msg := resolveCited(root, c.path); msg != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: `%s`: %s (an external file needs its owner/repo before it)", name, c.line, c.path, msg))
			}
		}
		for _, target := range linkTargets(text) {
			if scheme.MatchString(target) {
				continue // a web address
			}
			links++
			if msg := resolve(root, name, target); msg != "" {
				problems = append(problems, fmt.Sprintf("%s: %s: %s", name, target, msg))
			}
		}
	}
	return problems, links
}

var (
	outside    = regexp.MustCompile(`\.\./shared\b|/work/shared|shared/(reference|seed)/`)
	scheme     = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
	fence      = regexp.MustCompile("(?m)^\\s*(```|~~~).*$")
	codeSpan   = regexp.MustCompile("`[^`\n]*`")
	inlineLink = regexp.MustCompile(`\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	refLink    = regexp.MustCompile(`(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)`)
	htmlHref   = regexp.MustCompile(`(?i)<a\s[^>]*href="([^"]+)"`)
)

// linkTargets returns the targets of the Markdown links and <a href> of text, outside code.
func linkTargets(text string) []string {
	var prose strings.Builder
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			inCode = !inCode
			continue
		}
		if !inCode {
			prose.WriteString(codeSpan.ReplaceAllString(line, "") + "\n")
		}
	}
	var out []string
	for _, re := range []*regexp.Regexp{inlineLink, refLink, htmlHref} {
		for _, m := range re.FindAllStringSubmatch(prose.String(), -1) {
			out = append(out, m[1])
		}
	}
	return out
}

type citation struct {
	path string
	line int
}

var (
	pathSpan = regexp.MustCompile("`(\\.?[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_.*<>…-]*)+)`")
	// ownerRepo ends the text before an external citation: "google/OpenSK `libraries/…`",
	// "MicrosoftDocs/entra-docs, `docs/identity/…`".
	placeholder = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	ownerRepo   = regexp.MustCompile(`[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+,?\s*\(?$`)
)

// citedPaths returns the code spans of text's prose that name a path under one of root's top-level
// entries (`authenticator/store`, `harness/trace/testdata/session.trace.jsonl`), except those an
// owner/repo marks as another project's.
func citedPaths(root, text string) []citation {
	top := map[string]bool{}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		top[e.Name()] = true
	}
	var out []citation
	inCode := false
	prev := ""
	for i, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		for _, m := range pathSpan.FindAllStringSubmatchIndex(line, -1) {
			p := line[m[2]:m[3]]
			first, _, _ := strings.Cut(strings.TrimPrefix(p, "./"), "/")
			before := strings.TrimRight(prev+" "+line[:m[0]], " ")
			if !top[first] || first == ".git" || ownerRepo.MatchString(before) {
				continue
			}
			out = append(out, citation{path: p, line: i + 1})
		}
		prev = line
	}
	return out
}

// resolveCited checks that a cited repository path exists ("" when it does). A template
// (`ctap/<command>.go`, `…`) is not checked; a glob must match something.
func resolveCited(root, p string) string {
	if strings.ContainsAny(p, "<>…") {
		return ""
	}
	for _, seg := range strings.Split(p, "/") {
		if placeholder.MatchString(seg) {
			return "" // `transport/NAME`
		}
	}
	full := filepath.Join(root, filepath.FromSlash(strings.TrimSuffix(p, "/")))
	if strings.Contains(p, "*") {
		if m, _ := filepath.Glob(full); len(m) == 0 {
			return "no file in the repository matches it"
		}
		return ""
	}
	if _, err := os.Stat(full); err != nil {
		return "no such file in the repository"
	}
	return ""
}

// resolve checks one relative link of file from; "" means it resolves.
func resolve(root, from, target string) string {
	path, frag, _ := strings.Cut(target, "#")
	path, err := url.PathUnescape(path)
	if err != nil {
		return err.Error()
	}
	file := from // a bare #fragment points into the file itself
	if path != "" {
		file = filepath.ToSlash(filepath.Join(filepath.Dir(from), path))
		if file == ".." || strings.HasPrefix(file, "../") || filepath.IsAbs(path) {
			return "leaves the repository"
		}
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(file))); err != nil {
			return "no such file in the repository"
		}
	}
	if frag == "" || !strings.HasSuffix(file, ".md") {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(file)))
	if err != nil {
		return err.Error()
	}
	if !anchors(string(b))[frag] {
		return "no heading #" + frag + " in " + file
	}
	return ""
}

// anchors returns the ids GitHub gives the headings of a Markdown text: lower case, punctuation
// dropped, spaces as hyphens, -1, -2 … appended to repeats.
func anchors(text string) map[string]bool {
	ids := map[string]bool{}
	seen := map[string]int{}
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if fence.MatchString(line) {
			inCode = !inCode
		}
		if inCode || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		id := b.String()
		if n := seen[id]; n > 0 {
			ids[fmt.Sprintf("%s-%d", id, n)] = true
		} else {
			ids[id] = true
		}
		seen[id]++
	}
	return ids
}

// The checker must catch what it is for: each broken form below is one problem, the good ones none.
func TestCheckFindsWhatDoesNotResolve(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	}
	write("README.md", "[ok](docs/a.md) [ok](docs/a.md#second-part) [web](https://example.com) [self](#top)\n# Top\n")
	write("docs/a.md", "# A\n## Second part\n[up](../README.md) [ref][r] <a href=\"b.md\">b</a>\n\n[r]: ../README.md\n"+
		"```\n[in code](missing.md)\n```\nSee `[span](missing.md)`.\n")
	write("docs/b.md", strings.Join([]string{
		"[gone](missing.md)",
		"[escape](../../etc/passwd)",
		"[anchor](a.md#third-part)",
		"Sources: `../shared/reference/windows-host.md`",
		"[ref]: nowhere.md",
		"Cited: `docs/a.md`, `docs/*.md`, `docs/<name>.md`, `docs/NAME`, `other/x.go` (not a top-level entry),",
		"google/OpenSK `docs/opensk.rs`, MicrosoftDocs/entra-docs,",
		"`docs/identity/x.md`; but `docs/gone.go` and `docs/*.txt` are missing.",
	}, "\n")+"\n")
	problems, links := check(t, root, []string{"README.md", "docs/a.md", "docs/b.md"})
	require.Equal(t, 10, links)
	require.Len(t, problems, 7, strings.Join(problems, "\n"))
	for i, want := range []string{"no such file", "leaves the repository", "no heading #third-part",
		"outside the repository", "nowhere.md: no such file", "`docs/gone.go`: no such file",
		"`docs/*.txt`: no file in the repository matches it"} {
		require.Contains(t, strings.Join(problems, "\n"), want, i)
	}
}

func TestAnchors(t *testing.T) {
	t.Parallel()
	got := anchors("# The Windows host model\n## Gates (evaluated in this order; the first that matches decides)\n" +
		"## What works\n## What works\n### Entra ID as the relying party\n```\n# not a heading\n```\n")
	require.Equal(t, map[string]bool{
		"the-windows-host-model": true,
		"gates-evaluated-in-this-order-the-first-that-matches-decides": true,
		"what-works": true, "what-works-1": true,
		"entra-id-as-the-relying-party": true,
	}, got)
}
