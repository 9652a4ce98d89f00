package report

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
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
	require.Equal(t, 15, strings.Count(page, `<section class="case `), "every case has its details")
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
	tags := htmlElements(t, page, func(elem string, a xml.Attr) {
		require.False(t, strings.HasPrefix(strings.ToLower(a.Name.Local), "on"), "event handler %s on <%s>", a.Name.Local, elem)
		require.NotContains(t, strings.ToLower(a.Value), "javascript:", "<%s %s>", elem, a.Name.Local)
	})
	require.Equal(t, 1, tags["script"])
	require.Zero(t, tags["img"], "no injected <img>")
	require.Equal(t, 5, tags["b"], "only the legend's own <b> elements")
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
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium not found; CI must install it (apt-get install -y chromium)")
	}
	t.Skip("chromium not found; install it to look at the HTML report (apt-get install -y chromium)")
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

	dom := string(runChromium(t, bin, "--dump-dom", "file://"+path))
	require.Contains(t, dom, `<table class="matrix" id="matrix">`)
	require.Regexp(t, `<body[^>]*data-ready="1"`, dom, "the inline script ran")

	table := dom[strings.Index(dom, `id="matrix"`):]
	table = table[:strings.Index(table, "</table>")]
	rows := regexp.MustCompile(`<tr class="row[^"]*" data-scenario="([^"]+)"`).FindAllStringSubmatch(table, -1)
	var ids []string
	for _, m := range rows {
		ids = append(ids, m[1])
	}
	require.Equal(t, []string{"lock-screen-sign-in", "multi-account-lock-screen", "offline-sign-in-after-online",
		"webauthn-account-picker", "reset-outside-window"}, ids, "one row per scenario")
	versions := regexp.MustCompile(`<th class="version" scope="col" data-version="([^"]+)"`).FindAllStringSubmatch(table, -1)
	require.Len(t, versions, len(fixtureVersions), "one column per version")
	for i, v := range versions {
		require.Equal(t, fixtureVersions[i], v[1])
	}

	// Cells, row by row, in version order.
	cellClass := regexp.MustCompile(`<td class="cell (\w+)"`)
	want := map[string][]string{
		"lock-screen-sign-in":          {"pass", "pass", "pass", "pass"},
		"multi-account-lock-screen":    {"none", "pass", "fail", "fail"},
		"offline-sign-in-after-online": {"none", "keyinc", "keyinc", "keyinc"},
		"webauthn-account-picker":      {"none", "pass", "pass", "keyinc"},
		"reset-outside-window":         {"none", "none", "fail", "error"},
	}
	trs := strings.Split(table, "<tr ")[1:] // [0] holds the header row, written as a bare <tr>
	require.Len(t, trs, len(want))
	for i, tr := range trs {
		var got []string
		for _, m := range cellClass.FindAllStringSubmatch(tr, -1) {
			got = append(got, m[1])
		}
		require.Equal(t, want[ids[i]], got, ids[i])
	}
	require.Contains(t, trs[0], `class="row all-pass"`, "the script marked the all-pass row")
	require.NotContains(t, trs[1], "all-pass")

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

// htmlElements tokenizes page as a browser sees its tags, counts the start tags by name and
// hands every attribute to check.
func htmlElements(t *testing.T, page string, check func(elem string, a xml.Attr)) map[string]int {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(page))
	dec.Strict, dec.AutoClose, dec.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	tags := map[string]int{}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return tags
		}
		require.NoError(t, err)
		if se, ok := tok.(xml.StartElement); ok {
			tags[se.Name.Local]++
			for _, a := range se.Attr {
				check(se.Name.Local, a)
			}
		}
	}
}
