package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// commandsInUsage are the commands the usage lists: a command added to the usage is checked by
// the tests below without being named in them.
func commandsInUsage(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, m := range regexp.MustCompile(`(?m)^  fidolab ([a-z]+)`).FindAllStringSubmatch(usage, -1) {
		if !strings.Contains(strings.Join(cmds, " "), m[1]) {
			cmds = append(cmds, m[1])
		}
	}
	require.Subset(t, cmds, []string{"run", "serve", "key", "persona", "compat", "trace", "version", "help"})
	return cmds
}

// Every command-line mistake exits 2, an unknown flag included (it used to exit 1), and says
// what was wrong once.
func TestEveryUsageErrorExitsTwo(t *testing.T) {
	t.Parallel()
	for _, c := range commandsInUsage(t) {
		code, out, errOut := runCLI(t, c, "--no-such-flag")
		require.Equal(t, 2, code, "fidolab %s --no-such-flag: %s", c, errOut)
		require.Contains(t, out+errOut, "no-such-flag", c) // help prints where it was asked to
	}
	code, _, errOut := runCLI(t, "run", "--no-such-flag")
	require.Equal(t, 2, code)
	require.Equal(t, "fidolab run: usage: flag provided but not defined: -no-such-flag (fidolab run -h lists the flags)\n", errOut,
		"one line, not the message twice around the whole flag list")

	state := seedState(t, "alice")
	for _, args := range [][]string{
		{"run", "--parallel", "-5"},
		{"run", "--parallel", "many"},
		{"run", "--quiet=maybe"},
		{"run", "--filter", "re:("},
		{"run", "--filter", "no-such-case"},
		{"run", "--report", filepath.Join(t.TempDir(), "r.txt")},
		{"run", "--report", filepath.Join(t.TempDir(), "missing", "r.xml")},
		{"run", "--persona", "default", "--key", "socket:x"},
		{"run", "stray"},
		{"serve", "--user", "delay:-1s"},
		{"serve", "--user", "yes:please"},
		{"serve", "--log", "loud"},
		{"key"},
		{"key", "frobnicate"},
		{"key", "info"},
		{"key", "delete", "--state", state, "--id", "zz"},
		{"persona"},
		{"persona", "frobnicate"},
		{"persona", "show"},
		{"persona", "list", "extra"},
		{"trace", "frobnicate"},
		{"version", "extra"},
		{"help", "frobnicate"},
		{"frobnicate"},
		{},
	} {
		code, _, errOut := runCLI(t, args...)
		require.Equal(t, 2, code, "fidolab %s: %s", strings.Join(args, " "), errOut)
	}
}

// `key delete --id zz` said "no such credential"; zz is not a credential ID at all.
func TestKeyDeleteIDNotHex(t *testing.T) {
	t.Parallel()
	state := seedState(t, "alice")
	code, _, errOut := runCLI(t, "key", "delete", "--state", state, "--id", "zz")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `--id "zz" is not hex`)
	code, _, errOut = runCLI(t, "key", "delete", "--state", state, "--id", "00ff")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "no credential with ID 00ff")
}

// -h on every command and subcommand shows its help and exits 0 (key -h and persona -h said
// "unknown subcommand"); "fidolab help COMMAND" shows the same on stdout (it ignored COMMAND).
func TestHelpForEveryCommand(t *testing.T) {
	t.Parallel()
	for _, c := range commandsInUsage(t) {
		if c == "help" {
			continue
		}
		code, _, errOut := runCLI(t, c, "-h")
		require.Equal(t, 0, code, "fidolab %s -h: %s", c, errOut)
		require.Contains(t, errOut, "fidolab "+c, c)
		require.NotContains(t, errOut, "unknown", c)

		code, out, _ := runCLI(t, "help", c)
		require.Equal(t, 0, code, c)
		require.Equal(t, errOut, out, "help %s is %s -h, on stdout", c, c)
	}
	for _, args := range [][]string{
		{"key", "info", "-h"}, {"key", "delete", "--help"}, {"key", "help"},
		{"persona", "list", "-h"}, {"persona", "show", "-h"}, {"persona", "help"},
		{"trace", "show", "-h"}, {"help", "key", "delete"},
	} {
		code, out, errOut := runCLI(t, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
		require.Contains(t, out+errOut, "usage:", args)
	}
	_, out, _ := runCLI(t, "help", "run")
	require.Contains(t, out, "--allow-empty", "run's own flags, written as the docs write them")
	require.Contains(t, out, "--parallel int")
	_, out, _ = runCLI(t, "help", "key", "delete")
	require.Contains(t, out, "--id string")
	code, out, _ := runCLI(t, "help")
	require.Equal(t, 0, code)
	require.Equal(t, usage, out)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "--version")
	require.Equal(t, 0, code)
	require.True(t, strings.HasPrefix(out, "fidolab "), out)
	code, out2, _ := runCLI(t, "version")
	require.Equal(t, 0, code)
	require.Equal(t, out, out2)
	code, js, _ := runCLI(t, "version", "--json")
	require.Equal(t, 0, code)
	var v buildVersion
	require.NoError(t, json.Unmarshal([]byte(js), &v))
	require.Equal(t, "github.com/fidolab/fidolab", v.Module, "a test binary's main module is fidolab's")
}

// The real binary reports what the Go toolchain recorded in it (go version -m): its module
// version, and the commit when it was built from a git checkout with VCS stamping on.
func TestVersionOfBuiltBinary(t *testing.T) {
	bin := fidolabBinary(t)
	out, err := exec.Command(bin, "version", "--json").Output()
	require.NoError(t, err)
	var v buildVersion
	require.NoError(t, json.Unmarshal(out, &v))
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^\s+mod\s+github.com/fidolab/fidolab\s+(\S+)`).FindSubmatch(meta)
	require.NotNil(t, m, "%s", meta)
	require.Equal(t, string(m[1]), v.Version)
	rev := regexp.MustCompile(`(?m)^\s+build\s+vcs.revision=(\S+)`).FindSubmatch(meta)
	text, err := exec.Command(bin, "--version").Output()
	require.NoError(t, err)
	if rev != nil {
		require.Equal(t, string(rev[1]), v.Revision)
		require.Contains(t, string(text), "commit "+string(rev[1]))
	} else {
		require.Empty(t, v.Revision)
		require.Contains(t, string(text), "no commit recorded")
	}
}

func TestVersionText(t *testing.T) {
	t.Parallel()
	v := buildVersion{Version: "v1.2.0", Revision: "0123abcd", Time: "2026-01-02T03:04:05Z", Modified: true, Go: "go1.26.8", Platform: "linux/amd64"}
	require.Equal(t, "fidolab v1.2.0 (commit 0123abcd, 2026-01-02T03:04:05Z, with uncommitted changes) go1.26.8 linux/amd64", v.String())
}

// A --filter that selects nothing fails (exit 2) unless --allow-empty: a typo in CI used to pass
// as "EMPTY 0 cases". So does a key that leaves out every selected scenario.
func TestRunRefusesAnEmptySelection(t *testing.T) {
	t.Parallel()
	code, _, errOut := runCLI(t, "run", "--quiet", "--filter", "sign-in-lock-scren")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, `--filter "sign-in-lock-scren" selects none of the`)
	require.Contains(t, errOut, "--allow-empty")
	code, _, _ = runCLI(t, "run", "--list", "--filter", "sign-in-lock-scren")
	require.Equal(t, 2, code)

	code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--filter", "sign-in-lock-scren", "--allow-empty")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, out, "EMPTY")

	code, _, errOut = runCLI(t, "run", "--quiet", "--persona", "no-hmac-secret", "--filter", "key-no-hmac-secret")
	require.Equal(t, 2, code)
	require.Contains(t, errOut, "about a key of their own")
}

// A report that cannot be written is refused before the run (it used to fail after it, the run
// lost), and a user's own file is never replaced by a report.
func TestRunChecksReportsBeforeRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mine := filepath.Join(dir, "notes.md")
	require.NoError(t, os.WriteFile(mine, []byte("# my notes\n"), 0o644))
	tr := filepath.Join(dir, "t.jsonl")
	for path, want := range map[string]string{
		filepath.Join(dir, "r.txt"):             `unknown format ".txt"`,
		filepath.Join(dir, "missing", "r.json"): "no such file or directory",
		"/proc/r.xml":                           "cannot write in /proc",
		mine:                                    "is not a .md report fidolab wrote",
	} {
		code, out, errOut := runCLI(t, "run", "--quiet", "--ascii", "--trace", tr, "--report", filepath.Join(dir, "ok.json"), "--report", path)
		require.Equal(t, 2, code, path)
		require.Contains(t, errOut, want, path)
		require.Empty(t, out, "nothing ran")
		require.NoFileExists(t, tr, "nothing ran, no trace was started")
		require.NoFileExists(t, filepath.Join(dir, "ok.json"))
	}
	b, err := os.ReadFile(mine)
	require.NoError(t, err)
	require.Equal(t, "# my notes\n", string(b))
}
