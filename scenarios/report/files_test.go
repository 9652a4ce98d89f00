package report

import (
	"bytes"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/scenarios/result"
)

// The JUnit schema as CI systems read it, declared apart from the writer's structs so the test
// checks the document, not the writer's own idea of it.
type xTestsuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     float64      `xml:"time,attr"`
	Suites   []xTestsuite `xml:"testsuite"`
}

type xTestsuite struct {
	Name       string `xml:"name,attr"`
	Tests      int    `xml:"tests,attr"`
	Failures   int    `xml:"failures,attr"`
	Errors     int    `xml:"errors,attr"`
	Skipped    int    `xml:"skipped,attr"`
	Time       float64
	Properties []struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	} `xml:"properties>property"`
	Cases []xTestcase `xml:"testcase"`
}

type xProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

type xTestcase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Time      float64   `xml:"time,attr"`
	Failure   *xProblem `xml:"failure"`
	Error     *xProblem `xml:"error"`
	SystemOut string    `xml:"system-out"`
}

func TestJUnitStructure(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, JUnit(&b, fixtureRun()))
	require.True(t, strings.HasPrefix(b.String(), `<?xml version="1.0" encoding="UTF-8"?>`))
	var doc xTestsuites
	require.NoError(t, xml.Unmarshal(b.Bytes(), &doc))

	require.Equal(t, 17, doc.Tests)
	require.Equal(t, 3+4, doc.Failures, "regressions and key-incompatible cases are both failures")
	require.Equal(t, 1, doc.Errors)
	require.InDelta(t, 1.234, doc.Time, 1e-9)

	var names []string
	suites := map[string]xTestsuite{}
	for _, s := range doc.Suites {
		names = append(names, s.Name)
		suites[s.Name] = s
		require.Len(t, s.Cases, s.Tests, s.Name)
		var fails, errs int
		for _, c := range s.Cases {
			require.Equal(t, "fidolab."+s.Name, c.Classname)
			require.NotEmpty(t, c.SystemOut)
			require.False(t, c.Failure != nil && c.Error != nil)
			if c.Failure != nil {
				fails++
			}
			if c.Error != nil {
				errs++
			}
		}
		require.Equal(t, fails, s.Failures, s.Name)
		require.Equal(t, errs, s.Errors, s.Name)
	}
	require.Equal(t, []string{"lock-screen-sign-in", "multi-account-lock-screen", "offline-sign-in-after-online",
		"webauthn-account-picker", "reset-outside-window", "req-webauthn-1903"}, names, "one testsuite per scenario, in run order")

	lock := suites["lock-screen-sign-in"]
	require.Equal(t, []string{"10-1809", "10-1909", "10-2004", "11-24H2"},
		[]string{lock.Cases[0].Name, lock.Cases[1].Name, lock.Cases[2].Name, lock.Cases[3].Name}, "one testcase per version")
	require.Nil(t, lock.Cases[0].Failure)
	require.Contains(t, lock.Cases[0].SystemOut, "authenticatorGetAssertion -> CTAP2_OK (3.2ms)")
	require.Contains(t, lock.Cases[0].SystemOut, "        1: \"login.microsoft.com\",\n", "multi-line requests kept line by line")
	props := map[string]string{}
	for _, p := range lock.Properties {
		props[p.Name] = p.Value
	}
	require.Equal(t, "Sign in at the lock screen with a security key", props["title"])
	require.Equal(t, "no-hmac-secret", props["persona"])

	multi := suites["multi-account-lock-screen"].Cases[1]
	require.Equal(t, "10-2004", multi.Name)
	require.NotNil(t, multi.Failure)
	require.Equal(t, "fail", multi.Failure.Type)
	require.Equal(t, "step 3 lock-screen-sign-in: expected signed-in as bob, observed signed-in as alice", multi.Failure.Message)
	require.Contains(t, multi.Failure.Text, "last account added to the security key")

	off := suites["offline-sign-in-after-online"].Cases[0]
	require.Equal(t, "key-incompatible", off.Failure.Type)
	require.Contains(t, off.Failure.Message, "observed error no-hmac-secret; key: no hmac-secret extension")

	reset := suites["reset-outside-window"]
	require.Len(t, reset.Cases, 2)
	require.NotNil(t, reset.Cases[1].Error)
	require.Equal(t, "set-up failed: emulator: open state file: permission denied", reset.Cases[1].Error.Message)
	require.Nil(t, reset.Cases[1].Failure)
}

func TestJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []*result.Run{fixtureRun(), hostileRun(), fullRun(fixtureVersions), {Target: "model", Key: "k"}} {
		var b bytes.Buffer
		require.NoError(t, JSON(&b, in))
		out, err := ReadJSON(&b)
		require.NoError(t, err)
		if len(in.Versions) == 0 {
			in.Versions = []string{} // written as [], read back as such
		}
		require.Equal(t, in, out)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, data []byte)
	}{
		{"r.xml", func(t *testing.T, data []byte) { require.NoError(t, xml.Unmarshal(data, &xTestsuites{})) }},
		{"r.JSON", func(t *testing.T, data []byte) {
			_, err := ReadJSON(bytes.NewReader(data))
			require.NoError(t, err)
		}},
		{"r.html", func(t *testing.T, data []byte) {
			require.Contains(t, string(data), `<table class="matrix" id="matrix">`)
		}},
		{"r.htm", func(t *testing.T, data []byte) { require.Contains(t, string(data), "<!DOCTYPE html>") }},
		{"r.md", func(t *testing.T, data []byte) { require.Contains(t, string(data), "| scenario |") }},
	} {
		path := filepath.Join(dir, tc.name)
		require.NoError(t, WriteFile(path, fixtureRun()))
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		tc.check(t, data)
	}
	err := WriteFile(filepath.Join(dir, "r.pdf"), fixtureRun())
	require.ErrorContains(t, err, `unknown format ".pdf" (supported: .xml, .json, .html, .htm, .md)`)
	require.Error(t, WriteFile(filepath.Join(dir, "r.xml"), nil))
	require.Error(t, WriteFile(filepath.Join(dir, "missing", "r.xml"), fixtureRun()))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 5, "no temporary files left behind")
}

func TestMarkdownGolden(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, Markdown(&b, fixtureRun()))
	golden(t, "markdown.md", b.Bytes())
	out := b.String()
	require.Contains(t, out, "| `multi-account-lock-screen` | – | ✓ | **✗** | **✗** |")
	require.Contains(t, out, "| `multi-account-lock-screen` | 10-2004, 11-24H2 | 3 `lock-screen-sign-in` | signed-in as bob |")
	require.Contains(t, out, "no hmac-secret extension")
}

// unescapedPipe finds the pipes GitHub splits a table row on: those not escaped.
var unescapedPipe = regexp.MustCompile(`(^|[^\\])\|`)

func TestMarkdownEscapesHostileText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, Markdown(&b, hostileRun()))
	out := b.String()
	// Code spans show markup as text; outside them no markup may survive.
	prose := regexp.MustCompile("`[^`]*`").ReplaceAllString(out, "")
	require.NotContains(t, prose, "<script>")
	require.NotContains(t, prose, "<b>")
	require.NotContains(t, out, "\x1b")
	require.NotContains(t, out, "\x00")
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| `evil") {
			// Header "| scenario | versions | step | expected | observed |" has 6 unescaped pipes.
			n := len(unescapedPipe.FindAllStringIndex(l, -1))
			require.Contains(t, []int{3, 6}, n, "row broke out of its cells: %q", l)
		}
	}
}
