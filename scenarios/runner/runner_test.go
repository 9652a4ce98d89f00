package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/stretchr/testify/require"
)

const fakeCatalog = `
- id: two-accounts
  title: last added signs in
  section: Unsupported scenarios
  doc: This scenario utilizes the last account added to the security key.
  supported: false
  tags: [multi-account]
  windows: "10-1809, 10-1909"
  host: {join: entra, enable: intune-oma}
  key: {pin: "1234", accounts: [alice, bob]}
  steps:
    - action: lock-screen-sign-in
      pin: "1234"
      expect:
        - when: {windows: "10-1809"}
          outcome: {not-offered: version-unsupported}
        - outcome: {signed-in: bob}
- id: reset-window
  title: reset after the window
  section: Manage security key biometric, PIN, or reset security key
  doc: Users can change their PIN, update biometrics, or reset their security key
  supported: true
  tags: [manage]
  windows: "11-24H2"
  host: {join: entra, enable: intune-oma}
  key: {pin: "1234", accounts: [alice]}
  steps:
    - {action: replug, expect: done}
    - {action: wait, args: {seconds: 11}, expect: done}
    - {action: reset-key, expect: {error: reset-not-allowed}}
    - {action: replug, expect: done}
    - {action: reset-key, expect: done}
- id: wrong-pin
  title: wrong PIN
  section: Sign in with FIDO2 security key
  doc: Bala can choose the security key credential provider
  supported: true
  windows: "11-24H2"
  host: {join: entra, enable: intune-oma}
  key: {pin: "1234", accounts: [alice]}
  steps:
    - {action: lock-screen-sign-in, pin: "9999", expect: {error: pin-invalid}}
    - {action: lock-screen-sign-in, pin: "1234", expect: {signed-in: alice}}
`

func loadTemp(t *testing.T, body string) *catalog.Catalog {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cases.yaml"), []byte(body), 0o600))
	cat, err := catalog.LoadDir(dir)
	require.NoError(t, err)
	return cat
}

func byKey(run *result.Run) map[string]*result.Case {
	m := map[string]*result.Case{}
	for _, c := range run.Cases {
		m[c.ID+"@"+c.Version] = c
	}
	return m
}

func TestRunPassesAgainstFakeHost(t *testing.T) {
	t.Parallel()
	cat := loadTemp(t, fakeCatalog)
	var (
		mu    sync.Mutex
		calls []int
	)
	run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Progress: func(done, total int, c *result.Case) {
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, 4, total)
		require.NotNil(t, c)
		calls = append(calls, done)
	}})
	require.NoError(t, err)
	require.Less(t, run.Duration, 5*time.Second, "wait must advance the key's clock, not sleep")
	require.Equal(t, []int{1, 2, 3, 4}, calls)
	for _, c := range run.Cases {
		require.Equal(t, result.Pass, c.Verdict, "%s@%s: %s %s", c.ID, c.Version, c.Error, describe(c))
	}
	require.Equal(t, []string{"10-1809", "10-1909", "11-24H2"}, run.Versions)
	require.Equal(t, "fake", run.Target)
	require.True(t, run.OK())

	c := byKey(run)["two-accounts@10-1909"]
	require.Len(t, c.Steps, 3, "two set-up registrations and one step")
	require.Contains(t, c.Steps[0].Detail, "set-up on the reference host")
	require.Equal(t, "signed-in as bob", c.Steps[2].Observed.String())
	require.NotEmpty(t, c.Steps[2].Exchanges)
	require.Equal(t, "This scenario utilizes the last account added to the security key.", c.DocWords)
	for _, s := range c.Steps {
		require.NotContains(t, s.Detail, "1234", "PINs never reach reports")
		for _, e := range s.Exchanges {
			require.NotEmpty(t, e.Command)
			require.NotEmpty(t, e.Status)
		}
	}
}

func TestWrongExpectationFailsWithObservedAndExchanges(t *testing.T) {
	t.Parallel()
	body := strings.Replace(fakeCatalog, "        - outcome: {signed-in: bob}", "        - outcome: {signed-in: alice}", 1)
	cat := loadTemp(t, body)
	run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Filter: "two-accounts"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 2)
	c := byKey(run)["two-accounts@10-1909"]
	require.Equal(t, result.Fail, c.Verdict)
	require.Empty(t, c.KeyCause, "the catalog's own persona: a regression, not a key problem")
	last := c.Steps[len(c.Steps)-1]
	require.Equal(t, result.Fail, last.Verdict)
	require.Equal(t, "signed-in as alice", last.Expected.String())
	require.Equal(t, "signed-in as bob", last.Observed.String())
	var cmds []string
	for _, e := range last.Exchanges {
		cmds = append(cmds, e.Command)
	}
	require.Contains(t, strings.Join(cmds, " "), "GetAssertion")
	require.Equal(t, result.Pass, byKey(run)["two-accounts@10-1809"].Verdict)
	require.False(t, run.OK())
	require.Equal(t, 1, run.Summary().Failed)
}

func TestPersonaOverrideIsKeyIncompatible(t *testing.T) {
	t.Parallel()
	cat := loadTemp(t, fakeCatalog)
	p, err := persona.Builtin("no-hmac-secret")
	require.NoError(t, err)
	run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Keys: InProcess(p), Filter: "wrong-pin"})
	require.NoError(t, err)
	require.Equal(t, "no-hmac-secret", run.Persona)
	require.Len(t, run.Cases, 1)
	c := run.Cases[0]
	require.Equal(t, result.KeyIncompatible, c.Verdict, c.Error)
	require.Contains(t, c.KeyCause, "hmac-secret")
	require.Equal(t, 1, run.Summary().KeyIncompatible)

	oldest, err := persona.Parse([]byte("base: default\nname: oldest-first\nquirks: {oldestFirst: true}\n"), "oldest.yaml")
	require.NoError(t, err)
	run, err = Run(context.Background(), cat, Options{Target: fakeTarget{}, Keys: InProcess(oldest), Filter: "two-accounts windows:10-1909"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 1)
	require.Equal(t, result.KeyIncompatible, run.Cases[0].Verdict)
	require.Contains(t, run.Cases[0].KeyCause, "ordering")
}

func TestFilterAndBadFilter(t *testing.T) {
	t.Parallel()
	cat := loadTemp(t, fakeCatalog)
	run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Filter: "tag:manage"})
	require.NoError(t, err)
	require.Len(t, run.Cases, 1)
	require.Equal(t, "reset-window", run.Cases[0].ID)
	_, err = Run(context.Background(), cat, Options{Target: fakeTarget{}, Filter: "re:("})
	require.Error(t, err)
}

func TestMalformedUserFileNamesFileLineField(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	body := strings.Replace(fakeCatalog, "expect: {error: pin-invalid}", "expect: {error: pin-wrong}", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "multi.yaml"), []byte(body), 0o600))
	_, err := catalog.LoadDir(dir)
	require.ErrorContains(t, err, filepath.Join(dir, "multi.yaml")+`:42: wrong-pin.steps[0].expect: unknown outcome code "pin-wrong"`)
}

func TestCancelledRunReportsUnrunCases(t *testing.T) {
	t.Parallel()
	cat := loadTemp(t, fakeCatalog)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	run, err := Run(ctx, cat, Options{Target: fakeTarget{}, Parallel: 1})
	require.NoError(t, err)
	require.Len(t, run.Cases, 4)
	for _, c := range run.Cases {
		require.NotNil(t, c)
		require.NotEqual(t, result.Pass, c.Verdict)
	}
}

func describe(c *result.Case) string {
	var b strings.Builder
	for _, s := range c.Steps {
		b.WriteString(s.Action + ": expected " + s.Expected.String() + ", observed " + s.Observed.String() + " " + s.Observed.Reason + " " + strings.Join(s.Notes, "; ") + "\n")
	}
	return b.String()
}

// TestInProcessKeyClock: an in-process key's own waits (here a persona's processing delay) move
// its virtual clock, not the wall clock, and a `wait` step moves the same clock.
func TestInProcessKeyClock(t *testing.T) {
	t.Parallel()
	p, err := persona.Builtin("default")
	require.NoError(t, err)
	p.Quirks.ProcessingDelayMs = 1500
	f := InProcess(p)
	defer f.Close()
	key, err := f.Open(context.Background(), nil)
	require.NoError(t, err)
	defer key.Close()
	k := key.(*inprocKey)
	start := k.clock.Now()
	c, err := key.Client(context.Background(), host.ClientOptions{})
	require.NoError(t, err)
	_, err = c.GetInfo(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, k.clock.Now().Sub(start), "one getInfo costs 1.5 s of the key's time")
	k.Advance(11 * time.Second)
	require.Equal(t, 12500*time.Millisecond, k.clock.Now().Sub(start))
}

// TestNoExchanges: a run that asks for no traffic records none, with the same verdicts.
func TestNoExchanges(t *testing.T) {
	t.Parallel()
	cat := loadTemp(t, fakeCatalog)
	for _, no := range []bool{false, true} {
		run, err := Run(context.Background(), cat, Options{Target: fakeTarget{}, Filter: "wrong-pin", NoExchanges: no})
		require.NoError(t, err)
		require.Equal(t, result.Pass, run.Cases[0].Verdict)
		n := 0
		for _, s := range run.Cases[0].Steps {
			n += len(s.Exchanges)
		}
		require.Equal(t, no, n == 0, "NoExchanges %v: %d exchanges", no, n)
	}
}
