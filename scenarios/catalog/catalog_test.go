package catalog

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/stretchr/testify/require"
)

func TestEmbeddedCatalog(t *testing.T) {
	t.Parallel()
	cat, err := Embedded()
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(cat.Scenarios), 30)

	versions := map[string]bool{}
	for _, s := range cat.Scenarios {
		require.NotEmpty(t, s.Doc, s.ID)
		require.NotEmpty(t, s.Section, s.ID)
		require.NotEmpty(t, s.Windows, s.ID)
		require.True(t, strings.HasPrefix(s.File, "catalog/data/"), s.File)
		for _, v := range s.Windows {
			versions[v.Name] = true
		}
		if slices.Contains(s.Tags, "version-line") {
			require.True(t, crossesLine(s), "%s is tagged version-line but every version expects the same", s.ID)
		}
	}
	for _, v := range host.Versions {
		require.True(t, versions[v.Name], "no case runs on %s", v.Name)
	}
	// Both sides of every version line the document draws.
	for _, line := range []struct{ id, below, from string }{
		{"req-webauthn-1903", "10-1809", "10-1903"},
		{"req-entra-joined-1909", "10-1903", "10-1909"},
		{"req-hybrid-joined-2004", "10-1909", "10-2004"},
		{"unlock-1809", "10-1903", "10-1909"},
		{"manage-change-pin", "10-1809", "10-1903"},
		{"enable-ppkg-1903-no-shared-pc", "10-1903", "10-1909"},
	} {
		s, ok := cat.Get(line.id)
		require.True(t, ok, line.id)
		below, _ := host.ParseVersion(line.below)
		from, _ := host.ParseVersion(line.from)
		require.True(t, s.Windows.Has(below) && s.Windows.Has(from), line.id)
		a, _ := s.Steps[0].Expected(below)
		b, _ := s.Steps[0].Expected(from)
		require.False(t, a.Equal(b), "%s: same outcome on both sides of %s", line.id, line.from)
	}
}

func crossesLine(s *Scenario) bool {
	for _, st := range s.Steps {
		first, _ := st.Expected(s.Windows[0])
		for _, v := range s.Windows[1:] {
			if o, _ := st.Expected(v); !o.Equal(first) {
				return true
			}
		}
	}
	return false
}

// TestDocWordsAreTheDocument checks that every scenario quotes the seed document verbatim.
func TestDocWordsAreTheDocument(t *testing.T) {
	t.Parallel()
	// The document is kept in testdata so this test always runs; when the project's shared copy
	// sits beside the checkout, the two must be the same text.
	seed, err := os.ReadFile("testdata/windows-fido2-sign-in.md")
	require.NoError(t, err)
	if shared, err := os.ReadFile("../../../shared/seed/windows-fido2-sign-in.md"); err == nil {
		require.Equal(t, string(shared), string(seed), "testdata/windows-fido2-sign-in.md differs from shared/seed: copy it again")
	}
	norm := func(s string) string {
		s = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(s, "$1") // links keep their text
		return strings.Join(strings.Fields(s), " ")
	}
	doc := norm(string(seed))
	cat, err := Embedded()
	require.NoError(t, err)
	for _, s := range cat.Scenarios {
		require.True(t, strings.Contains(doc, norm(s.Doc)), "%s: doc words not found in the document: %q", s.ID, s.Doc)
		require.True(t, strings.Contains(doc, norm(s.Section)), "%s: section %q not found in the document", s.ID, s.Section)
	}
}

func TestParseVersions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		expr string
		want []string
		err  string
	}{
		{expr: "all", want: VersionSet(host.Versions).Names()},
		{expr: "10-1809", want: []string{"10-1809"}},
		{expr: ">=10-2004 <=10-21H2", want: []string{"10-2004", "10-20H2", "10-21H2"}},
		{expr: "<10-1909, 11-24H2", want: []string{"10-1809", "10-1903", "11-24H2"}},
		{expr: ">11-23H2", want: []string{"11-24H2"}},
		{expr: "=win10-1909", want: []string{"10-1909"}},
		{expr: "10-1703", err: "unknown Windows version"},
		{expr: ">11-24H2", err: "selects no Windows version"},
		{expr: "", err: "empty"},
		{expr: "10-1809,", err: "empty alternative"},
	} {
		got, err := ParseVersions(tc.expr)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.expr)
			continue
		}
		require.NoError(t, err, tc.expr)
		require.Equal(t, tc.want, got.Names(), tc.expr)
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	cat, err := Embedded()
	require.NoError(t, err)
	count := func(expr string) int {
		f, err := ParseFilter(expr)
		require.NoError(t, err, expr)
		return len(cat.Select(f))
	}
	all := len(cat.Cases())
	require.Equal(t, all, count(""))
	require.Equal(t, 10, count("req-webauthn-1903"))
	require.Equal(t, 1, count("req-webauthn-1903 windows:10-1809"))
	require.Equal(t, count("multi-*"), count("re:^multi-"))
	require.Positive(t, count("tag:manage"))
	require.Equal(t, all, count("tag:manage")+count("!tag:manage"))
	require.Zero(t, count("tag:manage windows:10-1809 !re:manage"))
	for _, bad := range []string{"re:(", "windows:10-1703", "tag:[", "x["} {
		_, err := ParseFilter(bad)
		require.Error(t, err, bad)
	}
}

func TestLoadDirMergesAndRejectsDuplicates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	own := strings.Replace(minimal, "id: mine", "id: my-own-case", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "own.yaml"), []byte(own), 0o600))
	user, err := LoadDir(dir)
	require.NoError(t, err)
	builtin, err := Embedded()
	require.NoError(t, err)
	merged, err := Merge(builtin, user)
	require.NoError(t, err)
	require.Len(t, merged.Scenarios, len(builtin.Scenarios)+1)
	_, ok := merged.Get("my-own-case")
	require.True(t, ok)

	dup := strings.Replace(minimal, "id: mine", "id: req-webauthn-1903", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "dup.yaml"), []byte(dup), 0o600))
	user, err = LoadDir(dir)
	require.NoError(t, err)
	_, err = Merge(builtin, user)
	require.ErrorContains(t, err, filepath.Join(dir, "dup.yaml")+`:1: id: duplicate id "req-webauthn-1903" (first defined at catalog/data/req-webauthn-1903.yaml:1)`)
}

func TestPersonaFileRelativeToScenario(t *testing.T) {
	t.Parallel()
	cat, err := Embedded()
	require.NoError(t, err)
	s, ok := cat.Get("key-full")
	require.True(t, ok)
	require.Equal(t, "two-slots", s.Key.Persona.Name)
	require.Equal(t, 2, s.Key.Persona.ResidentCapacity)

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "p"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "p", "tiny.yaml"), []byte("base: default\nname: tiny\nresidentCapacity: 1\n"), 0o600))
	body := strings.Replace(minimal, "key:\n", "key:\n  persona: p/tiny.yaml\n", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(body), 0o600))
	c, err := LoadDir(dir)
	require.NoError(t, err)
	require.Equal(t, "tiny", c.Scenarios[0].Key.Persona.Name)
}

// TestBuiltInFieldReports: every built-in field-report scenario cites its public report, quotes
// the reporter, says whether Windows' side is confirmed or inferred, points to the event IDs of a
// real export, and (where it shows a failure) carries a trace signature.
func TestBuiltInFieldReports(t *testing.T) {
	t.Parallel()
	cat, err := Embedded()
	require.NoError(t, err)
	n := 0
	for _, s := range cat.Scenarios {
		if !slices.Contains(s.Tags, TagFieldReport) {
			require.Nil(t, s.Report, s.ID)
			continue
		}
		n++
		r := s.Report
		require.NotNil(t, r, "%s: a built-in field report needs its report block", s.ID)
		require.True(t, strings.HasPrefix(r.Source, "https://github.com/"), s.ID)
		require.NotEmpty(t, r.Quote, s.ID)
		require.Contains(t, []string{"confirmed", "inferred"}, r.Windows, s.ID)
		require.NotEmpty(t, r.Events, s.ID)
		if !s.Supported {
			require.NotEmpty(t, r.Match, "%s: a failure a support engineer may meet needs a trace signature", s.ID)
		}
	}
	require.GreaterOrEqual(t, n, 10)
}
