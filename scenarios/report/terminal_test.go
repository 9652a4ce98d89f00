package report

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/scenarios/host"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file; run go test ./scenarios/report -update")
	require.Equal(t, string(want), string(got), "output differs from %s; if intended, run with -update and review the diff", path)
}

func allVersionNames() []string {
	var vs []string
	for _, v := range host.Versions {
		vs = append(vs, v.Name)
	}
	return vs
}

func TestTerminalGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		run  func() *resultRun
		opts TerminalOptions
	}{
		{"terminal-unicode.txt", fixtureRun, TerminalOptions{Width: 100}},
		{"terminal-ascii.txt", fixtureRun, TerminalOptions{Width: 100, ASCII: true}},
		{"terminal-80.txt", fixtureRun, TerminalOptions{Width: 80, Exchanges: 1}},
		{"terminal-full-80.txt", func() *resultRun { return fullRun(allVersionNames()) }, TerminalOptions{Width: 80}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			require.NoError(t, Terminal(&b, tc.run(), tc.opts))
			out := b.String()
			golden(t, tc.name, b.Bytes())
			require.NotContains(t, out, "\x1b", "no ANSI codes unless Color is set")
			for i, l := range strings.Split(out, "\n") {
				require.LessOrEqual(t, utf8.RuneCountInString(l), tc.opts.Width, "line %d too wide: %q", i+1, l)
			}
			if tc.opts.ASCII {
				for i, l := range strings.Split(out, "\n") {
					for _, r := range l {
						require.Less(t, r, rune(utf8.RuneSelf), "line %d has non-ASCII %q: %q", i+1, r, l)
					}
				}
			}
		})
	}
}

func TestTerminalContent(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, Terminal(&b, fixtureRun(), TerminalOptions{Width: 110}))
	out := b.String()
	lines := strings.Split(out, "\n")
	// The matrix: one row per scenario, cells in version order.
	row := func(id string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, id+" ") {
				return l
			}
		}
		t.Fatalf("no matrix row for %s in:\n%s", id, out)
		return ""
	}
	require.Equal(t, []string{"✓", "✓", "✓", "│", "✓"}, strings.Fields(row("lock-screen-sign-in"))[1:])
	require.Equal(t, []string{"–", "✓", "✗", "│", "✗"}, strings.Fields(row("multi-account-lock-screen"))[1:])
	require.Equal(t, []string{"–", "!", "!", "│", "!"}, strings.Fields(row("offline-sign-in-after-online"))[1:])
	require.Equal(t, []string{"–", "–", "✗", "│", "?"}, strings.Fields(row("reset-outside-window"))[1:])
	require.Equal(t, []string{"⊘", "✓", "–", "│", "–"}, strings.Fields(row("req-webauthn-1903"))[1:], "refused and worked look different")
	require.Contains(t, out, "✓ worked (8)  ⊘ refused (1), both as the document says")
	require.Contains(t, out, "Windows 10")
	require.Contains(t, out, "Windows 11")

	// The grouped failure names both versions once and shows expected against observed.
	require.Contains(t, out, "multi-account-lock-screen  10-2004 11-24H2")
	require.Contains(t, out, "expected  signed-in as bob (last account added)")
	require.Contains(t, out, "signed-in as alice (the host signed in with the first credential returned)")
	require.Contains(t, out, "authenticatorGetAssertion → CTAP2_OK (3.2ms)")
	require.Contains(t, out, `4: {"id": h'alice', "name": "alice@contoso.com"},`, "multi-line diagnostic notation kept line by line")
	// Key-incompatible cases are apart, under their cause.
	ki := out[strings.Index(out, "Key-incompatible ("):]
	require.Contains(t, ki, "persona no-hmac-secret breaks these cases")
	require.Contains(t, ki, "no hmac-secret extension: Windows needs it to derive the offline secret")
	require.Contains(t, ki, "offline-sign-in-after-online  10-1909 10-2004 11-24H2")
	require.Contains(t, ki, "no resident keys")
	require.NotContains(t, out[:strings.Index(out, "Key-incompatible (")], "no resident keys")
	require.Contains(t, out, "set-up failed: emulator: open state file: permission denied")
	require.Equal(t, "FAIL  17 cases: 9 passed, 3 failed, 4 key-incompatible, 1 error in 1.234s", lines[len(lines)-2])
}

func TestTerminalColor(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, Terminal(&b, fixtureRun(), TerminalOptions{Color: true}))
	require.Contains(t, b.String(), ansiBold+ansiRed+" ✗  "+ansiReset)
	require.Contains(t, b.String(), ansiBold+ansiRed+"FAIL ")

	b.Reset()
	require.NoError(t, Terminal(&b, fullRun([]string{"10-1909"}), TerminalOptions{Color: true}))
	require.Contains(t, b.String(), ansiBold+ansiGreen+"PASS  2 cases")
}

func TestTerminalEdgeCases(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.Error(t, Terminal(&b, nil, TerminalOptions{}))

	b.Reset()
	require.NoError(t, Terminal(&b, &resultRun{}, TerminalOptions{}))
	require.Contains(t, b.String(), "no cases ran")
	require.Contains(t, b.String(), "EMPTY  0 cases")

	// Versions that are not "group-label" shaped get plain column headers; a case whose version
	// the run did not declare still gets a column.
	r := fullRun([]string{"vm"})
	r.Cases = append(r.Cases, lockScreenCase("other"), nil)
	b.Reset()
	require.NoError(t, Terminal(&b, r, TerminalOptions{ASCII: true}))
	require.Contains(t, b.String(), "scenario                   vm  other")
	require.Contains(t, b.String(), "lock-screen-sign-in        ok   ok")
}

func TestTerminalStripsControlCharacters(t *testing.T) {
	t.Parallel()
	for _, ascii := range []bool{false, true} {
		var b bytes.Buffer
		require.NoError(t, Terminal(&b, hostileRun(), TerminalOptions{ASCII: ascii}))
		require.NotContains(t, b.String(), "\x1b", "a key's answer must not drive the terminal")
		require.NotContains(t, b.String(), "\x00")
		require.Contains(t, b.String(), "</script><b>bold</b>", "text is shown as it is, not dropped")
	}
}
