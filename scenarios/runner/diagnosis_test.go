package runner

import (
	"context"
	"strings"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

func embeddedRun(t *testing.T, p *persona.Persona, filter string) *result.Run {
	t.Helper()
	cat, err := catalog.Embedded()
	require.NoError(t, err)
	run, err := Run(context.Background(), cat, Options{Keys: InProcess(p), Filter: filter})
	require.NoError(t, err)
	require.NotEmpty(t, run.Cases)
	return run
}

func parsePersona(t *testing.T, yaml string) *persona.Persona {
	t.Helper()
	p, err := persona.Parse([]byte(yaml), "test.yaml")
	require.NoError(t, err)
	return p
}

// causesOf collects the key causes of a run's key-incompatible cases, and fails on any other
// red verdict: on another key, every failure of a catalog that passes with its own keys is the
// key's.
func causesOf(t *testing.T, run *result.Run) map[string][]string {
	t.Helper()
	by := map[string][]string{}
	for _, c := range run.Cases {
		switch c.Verdict {
		case result.Pass:
		case result.KeyIncompatible:
			require.NotEmpty(t, c.KeyCause, "%s@%s", c.ID, c.Version)
			by[c.ID] = append(by[c.ID], c.KeyCause)
		default:
			t.Fatalf("%s@%s: %s (%s), want key-incompatible", c.ID, c.Version, c.Verdict, c.Error)
		}
	}
	return by
}

// TestU2FKeyIsKeyIncompatibleWithCause: a CTAP1-only key fails every case that uses the key, and
// each says why, instead of "could not run" with a blank cause.
func TestU2FKeyIsKeyIncompatibleWithCause(t *testing.T) {
	t.Parallel()
	p, err := persona.Builtin("u2f")
	require.NoError(t, err)
	run := embeddedRun(t, p, "re:^(sign-in-lock-screen|manage-reset|unsupported-run-as)$ windows:11-24H2")
	require.Len(t, run.Cases, 3)
	for _, causes := range causesOf(t, run) {
		for _, c := range causes {
			require.Contains(t, c, "CTAP1/U2F only")
		}
	}
	require.Equal(t, 3, run.Summary().KeyIncompatible)
}

// TestOrderingIsKeyCaused: an oldest-first key makes offline-unlock-without-online sign in
// offline where the document expects a refusal; that is the key's ordering, not a regression.
func TestOrderingIsKeyCaused(t *testing.T) {
	t.Parallel()
	run := embeddedRun(t, parsePersona(t, "base: default\nname: oldest\nquirks: {oldestFirst: true}\n"), "offline-unlock-without-online windows:11-24H2")
	causes := causesOf(t, run)
	require.Len(t, causes["offline-unlock-without-online"], 1)
	require.Contains(t, causes["offline-unlock-without-online"][0], "credential ordering")
}

// TestTwoDefectsTwoCauses: a key with two behavioural defects shows both, each where it matters;
// a key lacking two capabilities names both in the same case.
func TestTwoDefectsTwoCauses(t *testing.T) {
	t.Parallel()
	run := embeddedRun(t, parsePersona(t, "base: default\nname: two-quirks\nquirks: {oldestFirst: true, hmacSecretPerBoot: true}\n"),
		"re:^(multi-account-order|offline-after-replug)$ windows:11-24H2")
	causes := causesOf(t, run)
	require.Contains(t, strings.Join(causes["multi-account-order"], "\n"), "credential ordering")
	require.NotContains(t, strings.Join(causes["multi-account-order"], "\n"), "hmac-secret", "no replug in that case")
	require.Contains(t, strings.Join(causes["offline-after-replug"], "\n"), "hmac-secret output changes after a power cycle")

	run = embeddedRun(t, parsePersona(t, "base: default\nname: two-gaps\nresidentKeys: false\ncredMgmt: false\ncredMgmtPreview: false\nlargeBlobs: false\nextensions: [credProtect]\n"),
		"sign-in-lock-screen windows:11-24H2")
	causes = causesOf(t, run)
	require.Len(t, causes["sign-in-lock-screen"], 1)
	cause := causes["sign-in-lock-screen"][0]
	require.Contains(t, cause, "resident keys")
	require.Contains(t, cause, "hmac-secret", "both missing capabilities, not only the first")
}

// TestRegressionIsNotBlamedOnTheKey: when the scenario's own key fails the case too, a failure on
// another key is the catalog's or the host's, and stays a plain failure.
func TestRegressionIsNotBlamedOnTheKey(t *testing.T) {
	t.Parallel()
	body := strings.Replace(fakeCatalog, "        - outcome: {signed-in: bob}", "        - outcome: {signed-in: alice}", 1)
	cat := loadTemp(t, body)
	p, err := persona.Builtin("ctap20")
	require.NoError(t, err)
	run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Keys: InProcess(p), Filter: "two-accounts windows:10-1909"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 1)
	require.Equal(t, result.Fail, run.Cases[0].Verdict)
	require.Empty(t, run.Cases[0].KeyCause)

	// The same with a baseline run given: no re-run, same verdict.
	base, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Filter: "two-accounts windows:10-1909"})
	require.NoError(t, err)
	run, err = Run(context.Background(), cat, Options{Target: fakeTarget{}, Keys: InProcess(p), Filter: "two-accounts windows:10-1909", Baseline: base})
	require.NoError(t, err)
	require.Equal(t, result.Fail, run.Cases[0].Verdict)
}
