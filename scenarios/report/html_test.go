package report

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/fidolab/fidolab/harness/peers/peertest"
)

func renderHTML(t *testing.T, r *resultRun) string {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, HTML(&b, r))
	return b.String()
}

// externalRef finds any attribute or CSS reference that would make the browser fetch something.
var externalRef = regexp.MustCompile(`(?i)(src|href|action|srcset|poster|data)\s*=\s*["']?\s*(https?:|//)|url\(\s*["']?\s*(https?:|//)|@import`)

func TestHTMLSelfContained(t *testing.T) {
	t.Parallel()
	for name, r := range map[string]*resultRun{"fixture": fixtureRun(), "hostile": hostileRun()} {
		page := renderHTML(t, r)
		require.NotRegexp(t, externalRef, page, name)
		require.NotContains(t, page, "http://", name)
		require.Equal(t, 1, strings.Count(page, "<script"), "%s: only the page's own inline script", name)
		require.Equal(t, 1, strings.Count(page, "<style"), name)
		require.NotContains(t, page, "<link", name)
		require.NotContains(t, page, "<img", name)
		require.NotContains(t, page, "<iframe", name)
	}
}

func TestHTMLContent(t *testing.T) {
	t.Parallel()
	page := renderHTML(t, fixtureRun())
	require.Contains(t, page, `<td class="cell fail" title="10-2004: fail: expected signed-in as bob, observed signed-in as alice"><a href="#case-multi-account-lock-screen--10-2004">✗</a></td>`)
	require.Contains(t, page, `<section class="case fail" id="case-multi-account-lock-screen--10-2004" data-verdict="fail">`)
	require.Contains(t, page, `<td class="cell none" title="10-1809: not in this run"><span>–</span></td>`)
	require.Contains(t, page, "<blockquote>Signing in or unlocking a Windows device")
	require.Contains(t, page, "<cite>the document, “Known issues”: supported</cite>")
	require.Contains(t, page, `<pre data-label="request">{
  1: &#34;login.microsoft.com&#34;,`, "multi-line requests kept as they are")
	require.Contains(t, page, `<details class="exchange" open><summary>authenticatorGetAssertion`, "failing step's exchanges open")
	require.Contains(t, page, `<strong>no hmac-secret extension: Windows needs it to derive the offline secret</strong>`)
	require.Contains(t, page, `<dt>persona</dt><dd><code>no-hmac-secret</code></dd>`)
	require.Contains(t, page, `<dt>started</dt><dd>2025-06-03 14:05:09 UTC</dd>`)
	require.Contains(t, page, `<li>PIN protocol 2 chosen (the key offers it)</li>`)
	require.Contains(t, page, `<div class="problem error"><strong>Could not run:</strong> set-up failed`)
	require.Equal(t, 17, strings.Count(page, `<section class="case `), "every case has its details")
}

func TestHTMLEscapesHostileText(t *testing.T) {
	t.Parallel()
	page := renderHTML(t, hostileRun())
	// The only script element and the only bold element are the page's own.
	require.Equal(t, 1, strings.Count(page, "<script"))
	require.Equal(t, 1, strings.Count(page, "</script>"))
	require.Equal(t, 1, strings.Count(page, "<b>"))
	require.NotContains(t, page, "<b>bold")
	// Tokenize the page as a browser would see its tags: no injected element or event handler.
	tags := htmlElements(t, page, func(elem string, a html.Attribute) {
		require.False(t, strings.HasPrefix(a.Key, "on"), "event handler %s on <%s>", a.Key, elem)
		require.NotContains(t, strings.ToLower(a.Val), "javascript:", "<%s %s>", elem, a.Key)
	})
	require.Equal(t, 1, tags["script"])
	require.Zero(t, tags["img"], "no injected <img>")
	require.Equal(t, 6, tags["b"], "only the legend's own <b> elements")
	require.NotContains(t, page, `" onmouseover=`)
	require.NotContains(t, page, `" onclick=`)
	require.NotContains(t, page, `href="javascript`)
	require.NotContains(t, page, "\x00")
	require.Contains(t, page, "&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;", "hostile text shown as text")
	// Anchors are built from safe characters only, and the matrix links to them.
	m := regexp.MustCompile(`href="#([^"]*)"`).FindAllStringSubmatch(page, -1)
	require.NotEmpty(t, m)
	for _, a := range m {
		require.Regexp(t, `^case-[A-Za-z0-9_-]+$`, a[1])
		require.Contains(t, page, `id="`+a[1]+`"`)
	}
}

// chromium finds a headless-capable Chromium; CI installs it, so there its absence is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	peertest.Require(t, "chromium (apt-get install -y chromium)", errors.New("no chromium, chromium-browser or google-chrome in PATH"))
	return ""
}

func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium failed: %s", stderr.String())
	return stdout.Bytes()
}

// TestHTMLInChromium loads the page in a real browser: the DOM it builds must hold the matrix
// with one row per scenario and one column per version, cells classed by verdict, and the inline
// script must have run (it marks the body ready and the all-pass rows).
func TestHTMLInChromium(t *testing.T) {
	bin := chromium(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "report.html")
	r := fixtureRun()
	require.NoError(t, WriteFile(path, r))

	dom, err := html.Parse(bytes.NewReader(runChromium(t, bin, "--dump-dom", "file://"+path)))
	require.NoError(t, err)
	body := findElement(dom, func(n *html.Node) bool { return n.Data == "body" })
	require.NotNil(t, body)
	require.Equal(t, "1", attr(body, "data-ready"), "the inline script ran")
	table := findElement(dom, func(n *html.Node) bool { return n.Data == "table" && attr(n, "id") == "matrix" })
	require.NotNil(t, table, "the matrix table")
	require.Equal(t, "matrix", attr(table, "class"))

	var ids, versions []string
	var rows []*html.Node
	for n := range table.Descendants() {
		switch {
		case n.Type != html.ElementNode:
		case n.Data == "tr" && attr(n, "data-scenario") != "":
			ids, rows = append(ids, attr(n, "data-scenario")), append(rows, n)
		case n.Data == "th" && attr(n, "class") == "version":
			versions = append(versions, attr(n, "data-version"))
		}
	}
	require.Equal(t, []string{"lock-screen-sign-in", "multi-account-lock-screen", "offline-sign-in-after-online",
		"webauthn-account-picker", "reset-outside-window", "req-webauthn-1903"}, ids, "one row per scenario")
	require.Equal(t, fixtureVersions, versions, "one column per version")

	// Cells, row by row, in version order.
	want := map[string][]string{
		"lock-screen-sign-in":          {"pass", "pass", "pass", "pass"},
		"multi-account-lock-screen":    {"none", "pass", "fail", "fail"},
		"offline-sign-in-after-online": {"none", "keyinc", "keyinc", "keyinc"},
		"webauthn-account-picker":      {"none", "pass", "pass", "keyinc"},
		"reset-outside-window":         {"none", "none", "fail", "error"},
		"req-webauthn-1903":            {"pass refused", "pass", "none", "none"},
	}
	for i, tr := range rows {
		var got []string
		for td := range tr.Descendants() {
			if class, ok := strings.CutPrefix(attr(td, "class"), "cell "); ok && td.Data == "td" {
				got = append(got, class)
			}
		}
		require.Equal(t, want[ids[i]], got, ids[i])
	}
	require.Equal(t, "row all-pass", attr(rows[0], "class"), "the script marked the all-pass row")
	require.NotContains(t, attr(rows[1], "class"), "all-pass")

	png := filepath.Join(dir, "report.png")
	runChromium(t, bin, "--screenshot="+png, "--window-size=1280,1600", "--hide-scrollbars", "file://"+path)
	data, err := os.ReadFile(png)
	require.NoError(t, err)
	require.Greater(t, len(data), 10_000, "a rendered page, not a blank image")
	require.Equal(t, "\x89PNG", string(data[:4]))
	if dst := os.Getenv("FIDOLAB_REPORT_SCREENSHOT"); dst != "" {
		// To look at it by hand: the screenshot and the page beside it.
		require.NoError(t, os.WriteFile(dst, data, 0o644))
		page, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst+".html", page, 0o644))
	}
}

// findElement returns the first element under n for which match holds, or nil.
func findElement(n *html.Node, match func(*html.Node) bool) *html.Node {
	for d := range n.Descendants() {
		if d.Type == html.ElementNode && match(d) {
			return d
		}
	}
	return nil
}

// attr is the value of n's attribute key, "" when absent.
func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// htmlElements parses page as a browser does (the HTML5 parsing algorithm of golang.org/x/net/html,
// so text inside <script> ends at the first </script>, as in a browser), counts the elements by
// name and hands every attribute to check.
func htmlElements(t *testing.T, page string, check func(elem string, a html.Attribute)) map[string]int {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	require.NoError(t, err)
	tags := map[string]int{}
	for n := range doc.Descendants() {
		if n.Type != html.ElementNode {
			continue
		}
		tags[n.Data]++
		for _, a := range n.Attr {
			check(n.Data, a)
		}
	}
	return tags
}

// The checks above are only as good as htmlElements: it must see an element injected through a
// script's text or an unquoted attribute as a browser would.
func TestHTMLElementsParsesAsABrowser(t *testing.T) {
	t.Parallel()
	page := `<!DOCTYPE html><title>x</title><script>var s = "</script><img src=x onerror=alert(1)>";</script>` +
		`<p title=a onclick=go()>text<td>stray cell</td><b>bold`
	var handlers []string
	tags := htmlElements(t, page, func(elem string, a html.Attribute) {
		if strings.HasPrefix(a.Key, "on") {
			handlers = append(handlers, elem+" "+a.Key)
		}
	})
	require.Equal(t, 1, tags["img"], "the script's text ended at </script>")
	require.Equal(t, 1, tags["script"])
	require.Equal(t, 1, tags["b"], "an unclosed element still counts")
	require.Zero(t, tags["td"], "a cell outside a table is dropped, as a browser does")
	require.Equal(t, []string{"img onerror", "p onclick"}, handlers)
}
