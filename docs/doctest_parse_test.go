package docs

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExtract(t *testing.T) {
	t.Parallel()
	md := strings.Join([]string{
		"# Title",
		"```sh",
		"echo one",
		"```",
		"",
		`<!-- doctest: skip reason="needs a \"real\" key" -->`,
		"",
		"~~~~python extra words",
		"print(1)",
		"```",
		"~~~~",
		"- a list item:",
		"",
		"  <!-- doctest: background wait-for=k.sock timeout=2m -->",
		"  ```sh",
		"  fidolab serve --listen unix:k.sock",
		"    indented more",
		"  ```",
		"```",
		"plain output",
		"```",
		"Inline ```not a fence``` here.",
		"```c",
		"```",
	}, "\n")
	blocks, err := Extract("x.md", md)
	require.NoError(t, err)
	require.Len(t, blocks, 5)

	require.Equal(t, Block{File: "x.md", Line: 2, Lang: "sh", Kind: KindShell, Code: "echo one\n"}, blocks[0])

	require.Equal(t, 8, blocks[1].Line)
	require.Equal(t, KindPython, blocks[1].Kind)
	require.Equal(t, "print(1)\n```\n", blocks[1].Code, "a shorter or other fence does not close ~~~~")
	require.Equal(t, Annotation{Present: true, Skip: `needs a "real" key`}, blocks[1].Annot)

	require.Equal(t, "fidolab serve --listen unix:k.sock\n  indented more\n", blocks[2].Code, "the fence's indentation is removed")
	require.Equal(t, Annotation{Present: true, Background: true, WaitFor: "k.sock", Timeout: 2 * time.Minute}, blocks[2].Annot)

	require.Equal(t, KindText, blocks[3].Kind)
	require.Empty(t, blocks[3].Annot)
	require.Equal(t, KindOther, blocks[4].Kind)
	require.Equal(t, "", blocks[4].Code)
	require.Equal(t, "x.md:23", blocks[4].Name())
}

func TestExtractErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, md, want string }{
		{"unclosed", "```sh\necho\n", "x.md:1: code block never closed"},
		{"annotation before prose", "<!-- doctest: background -->\ntext\n```sh\n```\n", "x.md:1: doctest comment not followed by a code block"},
		{"annotation at the end", "```sh\n```\n<!-- doctest: background -->\n", "x.md:3: doctest comment not followed by a code block"},
		{"two annotations", "<!-- doctest: background -->\n<!-- doctest: expect-exit=1 -->\n```sh\n```\n", "x.md:1: doctest comment not followed"},
		{"bad annotation", "<!-- doctest: skip -->\n```sh\n```\n", "x.md:1: doctest: skip needs a reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Extract("x.md", tc.md)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestParseAnnotation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Annotation
		err  string
	}{
		{in: `<!-- doctest: skip reason="needs a VM" -->`, want: Annotation{Present: true, Skip: "needs a VM"}},
		{in: `<!-- doctest: expect-exit=2 -->`, want: Annotation{Present: true, ExitCode: 2}},
		{in: `<!--   doctest:  expect-error file=a/b.yaml persona   -->`, want: Annotation{Present: true, Error: true, File: "a/b.yaml", Persona: true}},
		{in: `<!-- doctest: env=GOFLAGS=-benchtime=1x timeout=90s -->`, want: Annotation{Present: true, Env: "GOFLAGS=-benchtime=1x", Timeout: 90 * time.Second}},
		{in: `<!-- doctest: setup="mkdir -p ~/keys && echo \\ok" scenario -->`, want: Annotation{Present: true, Setup: `mkdir -p ~/keys && echo \ok`, Scenario: true}},
		{in: `<!-- doctest: background wait-for=k.sock -->`, want: Annotation{Present: true, Background: true, WaitFor: "k.sock"}},
		{in: `<!-- doctest: -->`, err: "empty doctest comment"},
		{in: `<!-- doctest: skip`, err: "must be one line"},
		{in: `<!-- doctest: skip reason="" -->`, err: "reason needs a value"},
		{in: `<!-- doctest: reason=x -->`, err: "reason= belongs to skip"},
		{in: `<!-- doctest: skip reason=x expect-exit=1 -->`, err: "skip takes only a reason"},
		{in: `<!-- doctest: skip=yes reason=x -->`, err: "skip takes no value"},
		{in: `<!-- doctest: expect-exit=256 -->`, err: "want 0..255"},
		{in: `<!-- doctest: expect-exit=-1 -->`, err: "want 0..255"},
		{in: `<!-- doctest: expect-exit=1 expect-exit=1 -->`, err: "given twice"},
		{in: `<!-- doctest: timeout=1h -->`, err: "up to 10m"},
		{in: `<!-- doctest: timeout=soon -->`, err: "up to 10m"},
		{in: `<!-- doctest: wait-for=x -->`, err: "wait-for= belongs to background"},
		{in: `<!-- doctest: background expect-exit=1 -->`, err: "no exit status"},
		{in: `<!-- doctest: file=/etc/passwd -->`, err: "inside the work directory"},
		{in: `<!-- doctest: file=a/../../x -->`, err: "inside the work directory"},
		{in: `<!-- doctest: persona scenario -->`, err: "exclusive"},
		{in: `<!-- doctest: env=NOEQUALS -->`, err: "env=NAME=VALUE"},
		{in: `<!-- doctest: skip reason="open -->`, err: "unterminated quote"},
		{in: `<!-- doctest: needs-vm -->`, err: `unknown directive "needs-vm"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseAnnotation(tc.in)
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// The console matcher and the command detector decide what a block must do: each must be able
// to say no.
func TestMatchOutput(t *testing.T) {
	t.Parallel()
	got := "fidolab run: usage: --filter \"x\" selects none of the 203 cases (see --list)\nsecond line\nthird\n"
	require.Empty(t, matchOutput([]string{`fidolab run: usage: --filter "x" selects none of the … cases (see --list)`, "third"}, got))
	require.Contains(t, matchOutput([]string{"third", "second line"}, got), `no line "second line"`, "order matters")
	require.Contains(t, matchOutput([]string{"fidolab run: usage: --filter \"x\" selects all"}, got), "no line")
	require.Contains(t, matchOutput([]string{"second"}, got), "no line", "a whole line, not a prefix")
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"fidolab serve --persona x\n":                        "fidolab serve --persona x",
		"$ fidolab persona show f\noutput\n":                 "$ fidolab persona show f",
		"output\n./fidolab devices --usb\n":                  "./fidolab devices --usb",
		"sudo modprobe uhid\n":                               "sudo modprobe uhid",
		"fidolab run · target model\n":                       "",
		"fidolab serve: usage: --listen: tcp:0.0.0.0:9700\n": "",
		"fidolab replay x.jsonl → fresh key\n":               "",
		"fidolab: control API on unix:c.sock\n":              "",
	} {
		require.Equal(t, want, commandLine(in), in)
	}
}

func TestOutsideWork(t *testing.T) {
	t.Parallel()
	for in, bad := range map[string]bool{
		"fidolab serve --listen unix:/tmp/k.sock":                     true,
		"curl http://127.0.0.1:8765/knobs":                            true,
		"fidolab serve --control localhost:9000":                      true,
		"fidolab serve --control 127.0.0.1:0":                         false,
		"fidolab serve --listen unix:k.sock":                          false,
		"ls harness/tmp/x":                                            false,
		"fidolab serve --listen unix:k.sock  # or tcp:127.0.0.1:9700": false,
	} {
		got := outsideWork.FindString(withoutComments(Block{Kind: KindShell, Code: in})) != ""
		require.Equal(t, bad, got, in)
	}
}

// FuzzParseAnnotation: any comment line is parsed or refused, never a panic, and what is accepted
// is consistent (a skip has a reason, wait-for only with background, an exit status in range).
func FuzzParseAnnotation(f *testing.F) {
	for _, s := range []string{
		`<!-- doctest: skip reason="needs a VM" -->`,
		`<!-- doctest: background wait-for=k.sock timeout=2m -->`,
		`<!-- doctest: expect-exit=2 env=A=B setup="a \"b\" \\c" -->`,
		`<!-- doctest: expect-error file=x.yaml persona -->`,
		`<!-- doctest: "" -->`, `<!-- doctest:`, `-->`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnnotation(s)
		if err != nil {
			require.Equal(t, Annotation{}, a)
			return
		}
		require.True(t, a.Present)
		require.False(t, a.WaitFor != "" && !a.Background)
		require.True(t, a.ExitCode >= 0 && a.ExitCode <= 255)
		require.False(t, a.Persona && a.Scenario)
		require.False(t, strings.HasPrefix(a.File, "/"))
		// The same comment inside a document annotates the block after it.
		if !strings.Contains(s, "\n") {
			blocks, err := Extract("f.md", s+"\n```sh\n```\n")
			if err == nil {
				require.Len(t, blocks, 1)
				require.Equal(t, a, blocks[0].Annot)
			}
		}
	})
}
