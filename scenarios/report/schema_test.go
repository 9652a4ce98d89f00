package report

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/scenarios/result"
)

// peerTool finds a validator the CI installs (.ci/deps); there its absence is a failure.
func peerTool(t *testing.T, path, check, debianPkg string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err == nil && check != "" {
		err = exec.Command(p, "-c", check).Run()
	}
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not usable (%v); CI must install it (apt-get install -y %s)", path, err, debianPkg)
	}
	t.Skipf("%s not usable (%v); install it to validate reports (apt-get install -y %s)", path, err, debianPkg)
	return ""
}

func schemaRuns() map[string]*result.Run {
	return map[string]*result.Run{
		"fixture": fixtureRun(),
		"hostile": hostileRun(),
		"full":    fullRun(fixtureVersions),
		"empty":   {Target: "model", Key: "in-process persona default", Started: time.Date(2025, 6, 3, 14, 5, 9, 0, time.UTC)},
	}
}

// TestJUnitValidatesAgainstJenkinsSchema checks every JUnit report against the schema Jenkins
// validates with (testdata/junit-jenkins.xsd), using libxml2's xmllint. The old writer's
// <testsuites timestamp=…> failed it.
func TestJUnitValidatesAgainstJenkinsSchema(t *testing.T) {
	t.Parallel()
	xmllint := peerTool(t, "xmllint", "", "libxml2-utils")
	xsd := filepath.Join("testdata", "junit-jenkins.xsd")
	dir := t.TempDir()
	validate := func(path string) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, xmllint, "--noout", "--schema", xsd, path).CombinedOutput()
		return err == nil, string(out)
	}
	var fixtureXML []byte
	for name, r := range schemaRuns() {
		var b bytes.Buffer
		require.NoError(t, JUnit(&b, r))
		path := filepath.Join(dir, name+".xml")
		require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
		ok, out := validate(path)
		require.True(t, ok, "%s: %s", name, out)
		if name == "fixture" {
			fixtureXML = b.Bytes()
		}
	}
	// The schema has teeth: what the writer used to produce is refused.
	old := bytes.Replace(fixtureXML, []byte("<testsuites "), []byte(`<testsuites timestamp="2025-06-03T14:05:09Z" `), 1)
	path := filepath.Join(dir, "old.xml")
	require.NoError(t, os.WriteFile(path, old, 0o600))
	ok, out := validate(path)
	require.False(t, ok)
	require.Contains(t, out, "timestamp")
	require.Contains(t, string(fixtureXML), `timestamp="2025-06-03T14:05:09Z"`, "the start time is on each testsuite")
}

const validateJSON = `
import json, sys
from jsonschema import Draft202012Validator
schema = json.load(open(sys.argv[1]))
Draft202012Validator.check_schema(schema)
v = Draft202012Validator(schema)
for p in sys.argv[2:]:
    errs = sorted(v.iter_errors(json.load(open(p))), key=lambda e: e.path)
    print(("INVALID " + p + ": " + errs[0].message) if errs else ("OK " + p))
`

// validateAgainstSchema validates each JSON file against docs/report-json.schema.json with
// python3-jsonschema (Debian's, in /usr/bin/python3) and returns its verdict line per file.
func validateAgainstSchema(t *testing.T, files ...string) map[string]string {
	t.Helper()
	py := peerTool(t, "/usr/bin/python3", "import jsonschema", "python3-jsonschema")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"-c", validateJSON, filepath.Join("..", "..", "docs", "report-json.schema.json")}, files...)
	out, err := exec.CommandContext(ctx, py, args...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	verdicts := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		for _, f := range files {
			if strings.Contains(l, " "+f) {
				verdicts[f] = l
			}
		}
	}
	require.Len(t, verdicts, len(files), "%s", out)
	return verdicts
}

func TestJSONValidatesAgainstItsSchema(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var files []string
	for name, r := range schemaRuns() {
		var b bytes.Buffer
		require.NoError(t, JSON(&b, r))
		p := filepath.Join(dir, name+".json")
		require.NoError(t, os.WriteFile(p, b.Bytes(), 0o600))
		files = append(files, p)
	}
	// The schema has teeth: the old report (result.Run as is: nanoseconds, no version) is refused.
	old, err := json.Marshal(fixtureRun())
	require.NoError(t, err)
	oldPath := filepath.Join(dir, "old-format.json")
	require.NoError(t, os.WriteFile(oldPath, old, 0o600))
	for f, verdict := range validateAgainstSchema(t, append(files, oldPath)...) {
		if f == oldPath {
			require.True(t, strings.HasPrefix(verdict, "INVALID"), verdict)
		} else {
			require.True(t, strings.HasPrefix(verdict, "OK"), verdict)
		}
	}
}

// TestJSONReportFields pins what docs/report-json.md promises.
func TestJSONReportFields(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	require.NoError(t, JSON(&b, fixtureRun()))
	var doc struct {
		SchemaVersion int            `json:"schemaVersion"`
		Verdict       string         `json:"verdict"`
		Totals        map[string]int `json:"totals"`
		Started       string         `json:"started"`
		DurationMs    float64        `json:"durationMs"`
		Cases         []struct {
			DurationMs float64 `json:"durationMs"`
			Steps      []struct {
				DurationMs float64 `json:"durationMs"`
				Exchanges  []struct {
					DurationMs float64 `json:"durationMs"`
				} `json:"exchanges"`
			} `json:"steps"`
		} `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(b.Bytes(), &doc))
	require.Equal(t, 1, doc.SchemaVersion)
	require.Equal(t, "fail", doc.Verdict)
	require.Equal(t, map[string]int{"cases": 17, "passed": 9, "worked": 8, "refused": 1, "failed": 3, "keyIncompatible": 4, "errors": 1}, doc.Totals)
	require.Equal(t, "2025-06-03T14:05:09Z", doc.Started)
	require.Equal(t, 1234.0, doc.DurationMs, "milliseconds, not nanoseconds")
	require.Equal(t, 12.0, doc.Cases[0].DurationMs)
	require.Equal(t, 4.0, doc.Cases[0].Steps[0].DurationMs)
	require.Equal(t, 0.4, doc.Cases[0].Steps[1].Exchanges[0].DurationMs, "400 µs")
	require.Equal(t, 3.2, doc.Cases[0].Steps[1].Exchanges[2].DurationMs, "3200 µs")
	require.NotContains(t, b.String(), `"duration":`, "no nanosecond fields")

	for r, want := range map[*result.Run]string{fullRun(fixtureVersions): "pass", {Target: "model"}: "empty"} {
		b.Reset()
		require.NoError(t, JSON(&b, r))
		require.Contains(t, b.String(), `"verdict": "`+want+`"`)
	}

	var future bytes.Buffer
	future.WriteString(`{"schemaVersion": 2, "cases": []}`)
	_, err := ReadJSON(&future)
	require.ErrorContains(t, err, "schemaVersion 2")
}

// TestReportJSONDocExample keeps the example in docs/report-json.md valid and readable.
func TestReportJSONDocExample(t *testing.T) {
	t.Parallel()
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "report-json.md"))
	require.NoError(t, err)
	m := regexp.MustCompile("(?s)```json\n(.*?)```").FindSubmatch(md)
	require.NotNil(t, m, "docs/report-json.md has a json example")
	_, err = ReadJSON(bytes.NewReader(m[1]))
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "example.json")
	require.NoError(t, os.WriteFile(p, m[1], 0o600))
	for _, verdict := range validateAgainstSchema(t, p) {
		require.True(t, strings.HasPrefix(verdict, "OK"), verdict)
	}
}
