package docs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fidolab/fidolab/harness/syncbuf"
	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/peers"
	"github.com/fidolab/fidolab/scenarios/catalog"
)

// TestDocBlocks runs every fenced code block of README.md and docs/**/*.md: shell and console
// blocks with a fidolab built from this checkout on PATH, python with python3 (python3-fido2 from
// .ci/deps), Go programs built against this module, YAML personas and scenarios through their real
// parsers, JSON parsed. The blocks of one file run in order in one fresh work directory (a later
// block may use what an earlier one wrote or served); files run in parallel. A block that cannot
// run here says so in a `<!-- doctest: skip reason="…" -->` comment (docs/contributing.md).
func TestDocBlocks(t *testing.T) {
	t.Parallel()
	files := markdownFiles(t)
	env := newDocEnv(t)
	var mu sync.Mutex
	ran, skipped := 0, map[string]string{}
	for _, f := range files {
		text, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(f)))
		require.NoError(t, err)
		blocks, err := Extract(f, string(text))
		require.NoError(t, err)
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			work := env.workDir(t)
			for _, b := range blocks {
				if b.Annot.Skip != "" {
					mu.Lock()
					skipped[b.Name()] = b.Annot.Skip
					mu.Unlock()
				}
				ok := t.Run(fmt.Sprintf("line%d", b.Line), func(t *testing.T) {
					if b.Annot.Skip != "" {
						t.Skipf("%s: doctest skip: %s", b.Name(), b.Annot.Skip)
					}
					env.run(t, work, b)
				})
				if ok && b.Annot.Skip == "" && b.Kind != KindText {
					mu.Lock()
					ran++
					mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(func() {
		t.Logf("doc blocks: %d run, %d skipped", ran, len(skipped))
		names := slices.Sorted(maps.Keys(skipped))
		for _, name := range names {
			t.Logf("  skipped %s: %s", name, skipped[name])
		}
	})
}

// markdownFiles lists README.md and every .md under docs/, as slash paths from the repository root.
func markdownFiles(t *testing.T) []string {
	files := []string{"README.md"}
	require.NoError(t, fs.WalkDir(os.DirFS(".."), "docs", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".md") {
			files = append(files, p)
		}
		return err
	}))
	return files
}

// docEnv is what every block shares: the repository, a fidolab built once, the environment.
type docEnv struct {
	repo string // absolute repository root
	bin  string // directory with fidolab and the go wrapper, first on PATH
	env  []string
}

func newDocEnv(t *testing.T) *docEnv {
	repo, err := filepath.Abs("..")
	require.NoError(t, err)
	bin := t.TempDir()
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	build := exec.Command(goBin, "build", "-o", filepath.Join(bin, "fidolab"), "./cmd/fidolab")
	build.Dir = repo
	out, err := build.CombinedOutput()
	require.NoError(t, err, "building fidolab: %s", out)
	// `go run ./cmd/fidolab …` and `go build -o NAME ./cmd/fidolab` in a block are the binary just
	// built from the same source (one build, not one per block); `go test` runs from the
	// repository itself, so that it shares the build cache instead of compiling the module again
	// under the work directory's path; every other go command is the real one in the work directory.
	wrapper := strings.NewReplacer("GO", shellQuote(goBin), "BIN", shellQuote(bin), "REPO", shellQuote(repo)).Replace(`#!/bin/sh
if [ "$1" = run ] && [ "$2" = ./cmd/fidolab ]; then shift 2; exec fidolab "$@"; fi
if [ $# -eq 4 ] && [ "$1" = build ] && [ "$2" = -o ] && [ "$4" = ./cmd/fidolab ]; then exec cp BIN/fidolab "$3"; fi
if [ "$1" = test ]; then exec GO -C REPO "$@"; fi
exec GO "$@"
`)
	require.NoError(t, os.WriteFile(filepath.Join(bin, "go"), []byte(wrapper), 0o755))
	// HOME is the work directory (a block's ~/ stays in it); the Go caches stay where they are.
	goenv, err := exec.Command(goBin, "env", "GOCACHE", "GOMODCACHE", "GOPATH").Output()
	require.NoError(t, err)
	vals := strings.Split(strings.TrimSpace(string(goenv)), "\n")
	require.Len(t, vals, 3)
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "TMPDIR", "GOCACHE", "GOMODCACHE", "GOPATH", "FIDOLAB_CONTROL_TOKEN_FILE",
			"FIDOLAB_STATE_KEY_FILE", "FIDOLAB_KEY_PIN", "NO_COLOR":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"GOCACHE="+vals[0], "GOMODCACHE="+vals[1], "GOPATH="+vals[2], "NO_COLOR=1")
	return &docEnv{repo: repo, bin: bin, env: env}
}

// workDir is a fresh directory holding a link to each top-level entry of the repository, so that a
// block's repository paths (harness/trace/testdata/…, ./cmd/fidolab) resolve while everything it
// writes lands in the directory.
func (e *docEnv) workDir(t *testing.T) string {
	// Short (not t.TempDir's test-named path): unix socket paths, the blocks' own and those of the
	// tests a block runs under TMPDIR, must fit in 108 bytes.
	dir, err := os.MkdirTemp("", "fidolab-doc-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	entries, err := os.ReadDir(e.repo)
	require.NoError(t, err)
	for _, en := range entries {
		if en.Name() == ".git" {
			continue
		}
		require.NoError(t, os.Symlink(filepath.Join(e.repo, en.Name()), filepath.Join(dir, en.Name())))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o700))
	t.Cleanup(func() { stopAll(t, dir) }) // the file's servers, before its directory goes
	return dir
}

func (e *docEnv) environ(work string) []string {
	return append(append([]string{}, e.env...), "HOME="+work, "TMPDIR="+filepath.Join(work, "tmp"))
}

func (e *docEnv) run(t *testing.T, work string, b Block) {
	if b.Annot.File != "" {
		require.NoError(t, os.WriteFile(filepath.Join(work, filepath.FromSlash(b.Annot.File)), []byte(b.Code), 0o600))
	}
	timeout := b.Annot.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	if b.Annot.Setup != "" {
		out, code := e.shell(t, work, b.Annot.Setup, timeout)
		require.Equal(t, 0, code, "%s: setup %q failed:\n%s", b.Name(), b.Annot.Setup, out)
	}
	if b.Annot.Env != "" {
		e = &docEnv{repo: e.repo, bin: e.bin, env: append(append([]string{}, e.env...), b.Annot.Env)}
	}
	switch b.Kind {
	case KindShell, KindConsole, KindPython, KindGo:
		if m := outsideWork.FindString(withoutComments(b)); m != "" {
			t.Fatalf("%s: %q: a block that runs keeps to its work directory and binds no fixed port "+
				"(a relative path, unix:NAME.sock, --control unix:control.sock, port 0)", b.Name(), m)
		}
	}
	switch b.Kind {
	case KindText:
		if cmd := commandLine(b.Code); cmd != "" {
			t.Fatalf("%s: an untagged block holds a command (%q): tag it sh or console so that it runs, "+
				"or annotate it with a doctest skip reason", b.Name(), cmd)
		}
	case KindOther:
		t.Fatalf("%s: a %q block cannot run here: annotate it <!-- doctest: skip reason=\"…\" -->", b.Name(), b.Lang)
	case KindShell:
		if b.Annot.Background {
			e.background(t, work, b, timeout)
			return
		}
		out, code := e.shell(t, work, b.Code, timeout)
		require.Equal(t, b.Annot.ExitCode, code, "%s: exit status; the block:\n%s\noutput:\n%s", b.Name(), b.Code, out)
	case KindConsole:
		e.console(t, work, b, timeout)
	case KindPython:
		requirePython(t, strings.Contains(b.Code, "fido2"))
		name := fmt.Sprintf("doctest-%d.py", b.Line)
		require.NoError(t, os.WriteFile(filepath.Join(work, name), []byte(b.Code), 0o600))
		out, code := e.shell(t, work, peers.PythonInterpreter+" "+name, timeout)
		require.Equal(t, b.Annot.ExitCode, code, "%s: exit status; output:\n%s", b.Name(), out)
	case KindGo:
		if !regexp.MustCompile(`(?m)^package \w+`).MatchString(b.Code) {
			t.Fatalf("%s: a Go fragment (no package clause): make it a whole program, or annotate a skip reason", b.Name())
		}
		dir := filepath.Join(work, fmt.Sprintf("doctest-go-%d", b.Line))
		require.NoError(t, os.Mkdir(dir, 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(b.Code), 0o600))
		// Built as a file of this module (from the repository): its imports are this checkout. Then
		// run in the work directory, like a shell block.
		exe := filepath.Join(dir, "prog")
		cmd := exec.Command("go", "build", "-o", exe, filepath.Join(dir, "main.go"))
		cmd.Dir, cmd.Env = e.repo, e.environ(work)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: the Go program does not build:\n%s", b.Name(), out)
		if !regexp.MustCompile(`(?m)^package main\b`).MatchString(b.Code) {
			return // a library package: building it is all
		}
		res, code := e.shell(t, work, shellQuote(exe), timeout)
		require.Equal(t, b.Annot.ExitCode, code, "%s: exit status; output:\n%s", b.Name(), res)
	case KindYAML:
		err := loadYAML(work, b)
		if b.Annot.Error {
			require.Error(t, err, "%s: the parser accepts a block shown as wrong", b.Name())
			t.Logf("%s: rejected as documented: %v", b.Name(), err)
			return
		}
		require.NoError(t, err, "%s", b.Name())
	case KindJSON:
		require.True(t, json.Valid([]byte(b.Code)), "%s: not valid JSON", b.Name())
	}
}

// loadYAML loads a YAML block with the parser fidolab itself uses: a scenario (it has a top-level
// id:) through the catalog, anything else as a persona.
func loadYAML(work string, b Block) error {
	scenario := b.Annot.Scenario || (!b.Annot.Persona && regexp.MustCompile(`(?m)^id:`).MatchString(b.Code))
	if scenario {
		if b.Annot.File != "" {
			_, err := catalog.LoadFile(filepath.Join(work, filepath.FromSlash(b.Annot.File)))
			return err
		}
		_, err := catalog.Parse([]byte(b.Code), b.Name(), nil)
		return err
	}
	_, err := persona.Parse([]byte(b.Code), b.Name())
	return err
}

// shell runs code with bash -eo pipefail in work and returns its combined output and exit status.
func (e *docEnv) shell(t *testing.T, work, code string, timeout time.Duration) (string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-eo", "pipefail", "-c", code)
	cmd.Dir, cmd.Env = work, e.environ(work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("timed out after %s (annotate timeout=… if it is honestly slow); the block:\n%s\noutput:\n%s", timeout, code, out.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return out.String(), exit.ExitCode()
	}
	require.NoError(t, err)
	return out.String(), 0
}

// background starts a server block and stops it (its whole process group) when the file's test ends.
func (e *docEnv) background(t *testing.T, work string, b Block, timeout time.Duration) {
	cmd := exec.Command("bash", "-eo", "pipefail", "-c", b.Code)
	cmd.Dir, cmd.Env = work, e.environ(work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	e.registerStop(work, server{name: b.Name(), stop: stop, out: out})
	if b.Annot.WaitFor == "" {
		return
	}
	path := filepath.Join(work, filepath.FromSlash(b.Annot.WaitFor))
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s: the server exited before %s appeared; output:\n%s", b.Name(), b.Annot.WaitFor, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not appear within %s; output:\n%s", b.Name(), b.Annot.WaitFor, timeout, out.String())
		}
	}
}

// server is a running background block.
type server struct {
	name string
	stop func()
	out  *syncbuf.Buffer
}

var (
	stopsMu sync.Mutex
	stops   = map[string][]server{}
)

// registerStop remembers how to stop a background block of the work directory.
func (e *docEnv) registerStop(work string, s server) {
	stopsMu.Lock()
	defer stopsMu.Unlock()
	stops[work] = append(stops[work], s)
}

// stopAll stops the background blocks of a work directory, newest first; when the file's test
// failed, it shows what each server printed.
func stopAll(t *testing.T, work string) {
	stopsMu.Lock()
	s := stops[work]
	delete(stops, work)
	stopsMu.Unlock()
	for i := len(s) - 1; i >= 0; i-- {
		s[i].stop()
		if t.Failed() {
			t.Logf("%s (background) printed:\n%s", s[i].name, s[i].out.String())
		}
	}
}

// console runs the "$ " lines of a console block in order; the other lines are the output they
// must print, line by line in order, where … stands for any text.
func (e *docEnv) console(t *testing.T, work string, b Block, timeout time.Duration) {
	var cmds, want []string
	var cont bool
	for _, l := range strings.Split(strings.TrimRight(b.Code, "\n"), "\n") {
		switch {
		case cont:
			cmds[len(cmds)-1] += "\n" + l
		case strings.HasPrefix(l, "$ "):
			cmds = append(cmds, strings.TrimPrefix(l, "$ "))
		case strings.TrimSpace(l) != "":
			want = append(want, l)
		}
		cont = strings.HasSuffix(l, "\\") && len(cmds) > 0
	}
	require.NotEmpty(t, cmds, "%s: a console block without a \"$ \" command line", b.Name())
	var all strings.Builder
	code := 0
	for _, c := range cmds {
		var out string
		out, code = e.shell(t, work, c, timeout)
		all.WriteString(out)
	}
	require.Equal(t, b.Annot.ExitCode, code, "%s: exit status of the last command; output:\n%s", b.Name(), all.String())
	if msg := matchOutput(want, all.String()); msg != "" {
		t.Fatalf("%s: %s\nthe block:\n%s\nthe output:\n%s", b.Name(), msg, b.Code, all.String())
	}
}

// matchOutput checks that each wanted line appears in got, in order; … matches any text. It
// returns "" when all do, else which line is missing.
func matchOutput(want []string, got string) string {
	lines := strings.Split(got, "\n")
	i := 0
	for _, w := range want {
		parts := strings.Split(strings.TrimSpace(w), "…")
		for k := range parts {
			parts[k] = regexp.QuoteMeta(parts[k])
		}
		re := regexp.MustCompile("^\\s*" + strings.Join(parts, ".*") + "\\s*$")
		for i < len(lines) && !re.MatchString(lines[i]) {
			i++
		}
		if i == len(lines) {
			return fmt.Sprintf("the output has no line %q (in this order)", w)
		}
		i++
	}
	return ""
}

// commandLine returns the first line of a shown-output block that reads like a command a user
// would type, "" when none does: such a block must be tagged so that it runs.
func commandLine(code string) string {
	for _, l := range strings.Split(code, "\n") {
		l = strings.TrimSpace(l)
		if strings.ContainsAny(l, "·→") {
			continue // fidolab's own output: "fidolab run · …", "fidolab replay … → …"
		}
		if commandRE.MatchString(l) {
			return l
		}
	}
	return ""
}

// outsideWork finds what a running block must not use: shared /tmp paths (parallel runs collide;
// the work directory is the place) and fixed loopback ports (another run may hold them).
var outsideWork = regexp.MustCompile(`(^|[\s:="'(])/tmp/\S*|(127\.0\.0\.1|localhost|\[::1\]):[1-9][0-9]*`)

// withoutComments drops the # comments of shell and python lines (a comment may name what a
// reader could use instead, e.g. tcp:127.0.0.1:9700).
func withoutComments(b Block) string {
	if b.Kind == KindGo {
		return b.Code
	}
	var out strings.Builder
	for _, l := range strings.Split(b.Code, "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		out.WriteString(l + "\n")
	}
	return out.String()
}

var commandRE = regexp.MustCompile(`^(\$ |sudo |go (run|build|test|tool|vet) |\./fidolab |fidolab (run|serve|key|persona|probe|trace|replay|devices|compat)( |$))`)

var (
	pythonOnce sync.Once
	pythonErr  error
)

// requirePython fails (with CI set) or skips when python3, or python-fido2 if the block needs it, is
// missing.
func requirePython(t *testing.T, fido2 bool) {
	pythonOnce.Do(func() {
		out, err := exec.Command(peers.PythonInterpreter, "-c", "import fido2").CombinedOutput()
		if err != nil {
			pythonErr = fmt.Errorf("python3 with python-fido2: %v: %s", err, out)
		}
	})
	if pythonErr == nil || !fido2 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v (bash .ci/deps installs python3-fido2)", pythonErr)
	}
	t.Skipf("%v: run bash .ci/deps (with CI=true this fails)", pythonErr)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
