package mutation

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/fidolab/fidolab/scenarios/winmodel"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the strength tables in docs/scenarios.md")

const (
	docPath    = "../../docs/scenarios.md"
	beginTable = "<!-- BEGIN strength (generated: go test ./scenarios/mutation -run TestCatalogStrength -update) -->"
	endTable   = "<!-- END strength -->"
)

// TestCatalogStrength is the catalog's mutation test. Every Windows-visible defect, injected as a
// persona and as a fault wherever it can be, must turn at least one case red, and each red case
// must blame the key with the defect's cause; every expressible Windows-invisible defect must leave
// the run green; and removing any single gate rule from the Windows model must change some case's
// outcome. docs/scenarios.md shows the resulting tables.
func TestCatalogStrength(t *testing.T) {
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	ctx := context.Background()
	baseline, err := runner.Run(ctx, cat, runner.Options{NoExchanges: true})
	require.NoError(t, err)
	require.True(t, baseline.OK(), "the catalog fails with its own keys: fix that first (go test ./scenarios/runner)")
	s := Strength{Defects: make([]DefectResult, len(Defects)), Rules: make([]RuleOutcome, len(winmodel.Rules))}
	var mu sync.Mutex
	t.Run("defects", func(t *testing.T) {
		for i, d := range Defects {
			s.Defects[i].Defect = d
			if raceEnabled && !raceSample[d.ID] {
				continue
			}
			t.Run(d.ID, func(t *testing.T) {
				t.Parallel()
				for _, m := range d.Modes() {
					o, err := Inject(ctx, cat, d, m, baseline)
					require.NoError(t, err)
					mu.Lock()
					s.Defects[i].Outcomes = append(s.Defects[i].Outcomes, o)
					mu.Unlock()
					if !d.Visible {
						require.False(t, o.Caught(), "%s (%s) is invisible to Windows (%s) but turned %v red: the model is stricter than Windows, or the defect is visible after all",
							d.ID, m, d.Why, o.Catchers)
						continue
					}
					require.True(t, o.Caught(), "%s (%s): %s survives every case", d.ID, m, d.What)
					require.Empty(t, o.Unexplained[:min(len(o.Unexplained), 5)], "%s (%s): %d red cases not blamed on the key with a cause", d.ID, m, len(o.Unexplained))
					for _, c := range o.Run.Cases {
						if c.Verdict != result.Pass && !strings.Contains(c.KeyCause, d.Cause) {
							t.Fatalf("%s (%s): %s@%s does not name the defect (%q): %s", d.ID, m, c.ID, c.Version, d.Cause, c.KeyCause)
						}
					}
				}
			})
		}
	})
	t.Run("rules", func(t *testing.T) {
		for i, r := range winmodel.Rules {
			t.Run(r.ID, func(t *testing.T) {
				t.Parallel()
				o, err := RemoveRule(ctx, cat, r)
				require.NoError(t, err)
				s.Rules[i] = o
				require.NotEmpty(t, o.Changed, "removing rule %s changes no case's outcome: add a case it decides, or fold it into the rule that decides for it", r.ID)
			})
		}
	})
	if t.Failed() || raceEnabled {
		return
	}
	caught, visible, flagged := s.Counts()
	t.Logf("visible defects caught: %d of %d injections; invisible flagged: %d", caught, visible, flagged)
	checkDoc(t, s.Markdown())
}

// raceSample are the defects run under the race detector: each way a defect reaches the key and
// each part of the diagnosis (timeouts on the virtual clock, knob faults, the simulated user,
// probes that replug and reset, a defect that must survive).
var raceSample = map[string]bool{
	"slow-no-keepalive": true, "hmac-secret-per-boot": true, "discoverable-ignores-rp-id": true,
	"touch-sensor-dead": true, "reset-window-5s": true, "slow-with-keepalive": true,
}

// checkDoc compares the generated tables with docs/scenarios.md, or rewrites them with -update.
func checkDoc(t *testing.T, tables string) {
	t.Helper()
	path := filepath.FromSlash(docPath)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(b)
	start, end := strings.Index(doc, beginTable), strings.Index(doc, endTable)
	require.True(t, start >= 0 && end > start, "docs/scenarios.md lacks the %q … %q markers", beginTable, endTable)
	want := doc[:start+len(beginTable)] + "\n" + tables + doc[end:]
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.Equal(t, want, doc, "docs/scenarios.md's strength tables are stale: go test ./scenarios/mutation -run TestCatalogStrength -update")
}
