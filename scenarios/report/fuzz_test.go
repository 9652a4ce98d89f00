package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/fidolab/fidolab/scenarios/result"
)

// FuzzRenderers feeds arbitrary text into every free-text field a catalog file or a key's answer
// can fill, and checks what each format promises: the page's own markup stays the only markup,
// the XML parses with the right counts, the terminal gets no control characters, the JSON report
// reads back as the same run.
func FuzzRenderers(f *testing.F) {
	f.Add("multi-account-lock-screen", "11-24H2", "Title", "doc words", "{\n  1: 2\n}", "CTAP2_OK", "reason", "no hmac-secret")
	f.Add(`</script><b>x`, `"><img src=x onerror=alert(1)>`, "\x00\x1b[2J", "]]></system-out>", "</pre>", `" onclick="x`, "|a|`b`", "\xff\xfe")
	f.Add("", "", "", "", "", "", "", "")
	f.Add("a\nb", "10-1909", "&amp; &lt;", "<!-- -->", "<![CDATA[x]]>", "\r\n", "\t", "javascript:alert(1)")
	f.Fuzz(func(t *testing.T, id, version, title, doc, request, status, reason, cause string) {
		c := multiAccountCase(version, false)
		c.ID, c.Title, c.DocWords, c.DocSection = id, title, doc, reason
		c.Tags = []string{cause}
		st := c.Steps[2]
		st.Observed.Reason, st.Detail = reason, request
		st.Notes = append(st.Notes, doc)
		st.Exchanges[2].Request, st.Exchanges[2].Response, st.Exchanges[2].Status = request, request, status
		k := offlineCase(version, "no-hmac-secret")
		k.ID, k.KeyCause = id+"-k", cause
		e := resetCase("11-24H2")
		e.ID, e.Error = id+"-e", reason
		r := &result.Run{Target: title, Key: request, Persona: cause, Versions: []string{version, "11-24H2"},
			Cases: []*result.Case{c, k, e}}

		var term bytes.Buffer
		require.NoError(t, Terminal(&term, r, TerminalOptions{Width: 80}))
		require.NotContains(t, term.String(), "\x1b")
		require.NotContains(t, term.String(), "\x00")
		term.Reset()
		require.NoError(t, Terminal(&term, r, TerminalOptions{ASCII: true}))
		for _, b := range term.Bytes() {
			require.Less(t, b, byte(utf8.RuneSelf), "ASCII mode printed a non-ASCII byte")
		}

		var md bytes.Buffer
		require.NoError(t, Markdown(&md, r))
		require.NotContains(t, md.String(), "\x00")

		var x bytes.Buffer
		require.NoError(t, JUnit(&x, r))
		var doc2 xTestsuites
		require.NoError(t, xml.Unmarshal(x.Bytes(), &doc2), "JUnit must stay well-formed")
		require.Equal(t, 3, doc2.Tests)
		require.Equal(t, 2, doc2.Failures)
		require.Equal(t, 1, doc2.Errors)

		var h bytes.Buffer
		require.NoError(t, HTML(&h, r))
		tags := htmlElements(t, h.String(), func(_ string, a html.Attribute) {
			require.False(t, strings.HasPrefix(a.Key, "on"), "injected %s", a.Key)
		})
		require.Equal(t, 1, tags["script"])
		require.Equal(t, 1, tags["style"])
		require.Zero(t, tags["img"]+tags["iframe"]+tags["link"]+tags["object"])
		require.Equal(t, 3, tags["section"])

		var j bytes.Buffer
		require.NoError(t, JSON(&j, r))
		require.True(t, json.Valid(j.Bytes()))
		back, err := ReadJSON(&j)
		require.NoError(t, err)
		if utf8.ValidString(id + version + title + doc + request + status + reason + cause) {
			require.Equal(t, r, back)
		}
	})
}
