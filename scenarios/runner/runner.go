// Package runner replays catalog scenarios against a host.Target: for each case (a scenario on
// one Windows version) a fresh key, the key set-up through a reference host, then every step with
// its CTAP traffic recorded and its observed outcome compared with the expected one.
package runner

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/winmodel"
)

// Options configure Run.
type Options struct {
	// Target is where hosts run; nil means the built-in Windows model.
	Target host.Target
	// Keys makes each case's key; nil means InProcess(nil): the scenario's own persona.
	Keys KeyFactory
	// Filter selects cases (catalog.ParseFilter syntax); "" runs everything.
	Filter string
	// Parallel is how many cases run at once; 0 means GOMAXPROCS. A sequential key forces 1.
	Parallel int
	// Progress, when set, is called after each case (from one goroutine at a time).
	Progress func(done, total int, c *result.Case)
	// CaseTimeout bounds one case; 0 means one minute.
	CaseTimeout time.Duration
	// Clock times the run, its cases and steps for the reports, and the `wait` steps on a key
	// without a clock of its own (an external key); nil means the wall clock. In-process keys
	// have their own virtual clocks.
	Clock clock.Clock
	// NoExchanges leaves the steps' CTAP exchanges out of the result: a run whose verdicts and
	// causes are read but not its traffic (the catalog's mutation measurement) skips decoding it.
	NoExchanges bool
	// Baseline is a run of the same catalog on the same target with each scenario's own key.
	// On another key a failing case is blamed on that key only when its baseline case passed;
	// without Baseline each failing case is run again with its own key to find out.
	Baseline *result.Run
	// WrapConn, when set, wraps every host connection a case opens to its key, with the case's
	// label ("id@version") and the key's clock (nil for a key without one): fidolab run --trace
	// records through it.
	WrapConn func(caseLabel string, now func() time.Time, c ctaphid.ReportConn) ctaphid.ReportConn
	// Mark, when set, is told what each case does, in order: "set-up: register alice", "step 2:
	// reset-key", "key replugged" (fidolab run --trace writes them into the trace, where replay
	// and trace scenario read them).
	Mark func(caseLabel, text string)
}

// keyAgnostic drops the cases whose scenario is about a key of its own (it names a persona other
// than "default": a key without hmac-secret, a full key): run on another key they would test that
// key's properties, not the document. On a key outside the process it also drops the scenarios
// whose tenant enforces attestation: Entra then trusts the key only if its attestation root is in
// FIDO MDS, which the model does not have (an in-process key's own test CA it does trust). It
// returns the kept cases and the ids left out.
func keyAgnostic(cases []catalog.Case, outside bool) ([]catalog.Case, []string) {
	var kept []catalog.Case
	var out []string
	seen := map[string]bool{}
	for _, c := range cases {
		if ref := c.Key.PersonaRef; (ref != "" && ref != "default") || (outside && c.Host.Tenant.EnforceAttestation) {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c.ID)
			}
			continue
		}
		kept = append(kept, c)
	}
	return kept, out
}

// Reference is the device a case's accounts are registered through before its steps: up to
// date, Entra joined, enabled, online. Set-up therefore never depends on the version under test.
var Reference = host.Config{Join: host.JoinEntra, Enable: host.EnableIntuneOMA, Online: true}

func init() { Reference.Version = host.Versions[len(host.Versions)-1] }

// Run runs every selected case of cat and returns what was observed. The error is for a run that
// could not start (bad filter); case failures are in the result.
func Run(ctx context.Context, cat *catalog.Catalog, opts Options) (*result.Run, error) {
	f, err := catalog.ParseFilter(opts.Filter)
	if err != nil {
		return nil, err
	}
	if opts.Target == nil {
		opts.Target = winmodel.New()
	}
	if opts.Keys == nil {
		opts.Keys = InProcess(nil)
	}
	defer opts.Keys.Close()
	if opts.CaseTimeout <= 0 {
		opts.CaseTimeout = time.Minute
	}
	opts.Clock = clock.Or(opts.Clock)
	par := opts.Parallel
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	if opts.Keys.Sequential() {
		par = 1
	}
	cases := cat.Select(f)
	var leftOut []string
	if opts.Keys.Override() != "" {
		_, inproc := opts.Keys.(*inprocFactory)
		cases, leftOut = keyAgnostic(cases, !inproc)
	}
	run := &result.Run{
		Started: opts.Clock.Now(), Target: opts.Target.Name(), Key: opts.Keys.Describe(),
		Persona: opts.Keys.Override(), Cases: make([]*result.Case, len(cases)), LeftOut: leftOut,
	}
	seen := map[string]bool{}
	for _, c := range cases {
		seen[c.Version.Name] = true
	}
	for _, v := range host.Versions {
		if seen[v.Name] {
			run.Versions = append(run.Versions, v.Name)
		}
	}

	// A key from outside is inspected first: one that is not empty is erased only with permission,
	// and a refusal skips every case with the reason instead of failing each on its own.
	if pf, ok := opts.Keys.(interface{ Preflight(context.Context) error }); ok {
		if err := pf.Preflight(ctx); err != nil {
			var skip *SkipError
			if !errors.As(err, &skip) {
				return nil, err
			}
			for i := range cases {
				run.Cases[i] = newCase(cases[i])
				run.Cases[i].Verdict, run.Cases[i].Error = result.Skipped, skip.Reason
			}
			run.Duration = opts.Clock.Now().Sub(run.Started)
			return run, nil
		}
	}

	var diag *diagnosis
	if opts.Keys.Override() != "" {
		diag = newDiagnosis(opts)
		defer diag.close()
	}
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(par, max(len(cases), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rc := runCase(ctx, cases[i], opts, diag)
				mu.Lock()
				run.Cases[i] = rc
				done++
				if opts.Progress != nil {
					opts.Progress(done, len(cases), rc)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range cases {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	// Cases never started because ctx ended are reported as errors, not silently dropped.
	for i, rc := range run.Cases {
		if rc == nil {
			run.Cases[i] = newCase(cases[i])
			run.Cases[i].Verdict, run.Cases[i].Error = result.Error, "not run: "+ctx.Err().Error()
		}
	}
	run.Duration = opts.Clock.Now().Sub(run.Started)
	return run, nil
}

func newCase(c catalog.Case) *result.Case {
	return &result.Case{
		ID: c.ID, Title: c.Title, Version: c.Version.Name, Supported: c.Supported, DocWords: c.Doc,
		DocSection: c.Section, Tags: c.Tags, File: c.File,
	}
}

// runCase runs one case; it never returns nil. diag, when set, explains failures by the key.
func runCase(ctx context.Context, c catalog.Case, opts Options, diag *diagnosis) *result.Case {
	start := opts.Clock.Now()
	rc := newCase(c)
	defer func() { rc.Duration = opts.Clock.Now().Sub(start) }()
	ctx, cancel := context.WithTimeout(ctx, opts.CaseTimeout)
	defer cancel()

	inner, err := opts.Keys.Open(ctx, c.Scenario)
	var skip *SkipError
	switch {
	case errors.As(err, &skip):
		rc.Verdict, rc.Error = result.Skipped, skip.Reason
		return rc
	case err != nil:
		rc.Verdict, rc.Error = result.Error, "key: "+err.Error()
		return rc
	}
	defer inner.Close()
	if w, ok := inner.(connWrapping); ok && opts.WrapConn != nil {
		label := c.ID + "@" + c.Version.Name
		var now func() time.Time
		if kc, ok := inner.(interface{ Now() time.Time }); ok {
			now = kc.Now
		}
		w.setConnWrapper(func(conn ctaphid.ReportConn) ctaphid.ReportConn { return opts.WrapConn(label, now, conn) })
	}
	defer skipIfKeySays(inner, rc)
	key := &recKey{Key: inner, ctx: ctx, clock: opts.Clock, noExchanges: opts.NoExchanges}
	if opts.Mark != nil {
		label := c.ID + "@" + c.Version.Name
		key.mark = func(text string) { opts.Mark(label, text) }
	}
	if f, ok := opts.Target.(interface{ Forget(host.Key) }); ok {
		defer f.Forget(key) // the case's organisation ends with it
	}

	if err := setUp(ctx, c, opts.Target, key, rc); err != nil {
		rc.Verdict, rc.Error = result.Error, err.Error()
		judge(ctx, c, key, diag, rc)
		return rc
	}
	cfg := c.Config(c.Version)
	if cfg.Tenant, err = resolveKeyAAGUID(ctx, cfg.Tenant, key); err != nil {
		rc.Verdict, rc.Error = result.Error, err.Error()
		return rc
	}
	h, err := opts.Target.NewHost(ctx, cfg, key)
	if err != nil {
		rc.Verdict, rc.Error = result.Error, fmt.Sprintf("host %s: %v", c.Version.Name, err)
		return rc
	}
	defer h.Close()
	for i, st := range c.Steps {
		exp, _ := st.Expected(c.Version) // the loader guarantees an outcome for every version
		key.markf("step %d: %s", i+1, markAction(st.Action))
		s := do(ctx, h, key, st.Action, exp, "")
		key.markf("step %d observed: %s", i+1, s.Observed)
		rc.Steps = append(rc.Steps, s)
		if s.Verdict == result.Error {
			rc.Verdict, rc.Error = result.Error, fmt.Sprintf("step %d (%s): %s", i+1, st.Action.Name, strings.Join(s.Notes, "; "))
			break
		}
	}
	judge(ctx, c, key, diag, rc)
	return rc
}

// skipIfKeySays marks the case skipped when its key could not do what the case asked of it on
// purpose (a replug with nobody to do it), whatever the steps then observed.
func skipIfKeySays(k Key, rc *result.Case) {
	if s, ok := k.(interface{ SkipReason() string }); ok {
		if why := s.SkipReason(); why != "" {
			rc.Verdict, rc.Error, rc.KeyCause = result.Skipped, why, ""
		}
	}
}

// setUp gives the key its PIN and registers the scenario's accounts, in order, through a host of
// the Reference configuration. Its steps are kept in the case (marked "set-up") for the reports.
func setUp(ctx context.Context, c catalog.Case, t host.Target, key *recKey, rc *result.Case) error {
	ks := c.Key
	if ks.PIN == "" && len(ks.Accounts) == 0 {
		return nil
	}
	ref, err := t.NewHost(ctx, Reference, key)
	if err != nil {
		return fmt.Errorf("set-up: reference host: %w", err)
	}
	defer ref.Close()
	detail := "set-up on the reference host (" + Reference.Version.Name + ", Entra joined)"
	type setUpAction struct {
		a   host.Action
		exp result.Outcome
	}
	var acts []setUpAction
	if len(ks.Accounts) == 0 {
		acts = append(acts, setUpAction{host.Action{Name: host.ActSetPIN, NewPIN: ks.PIN}, result.Outcome{Kind: host.KindDone}})
	}
	for _, acc := range ks.Accounts {
		acts = append(acts, setUpAction{host.Action{Name: host.ActRegister, Account: acc, PIN: ks.PIN},
			result.Outcome{Kind: host.KindRegistered, Account: acc}})
	}
	for _, x := range acts {
		key.markf("set-up: %s", markAction(x.a))
		s := do(ctx, ref, key, x.a, x.exp, detail)
		key.markf("set-up observed: %s", s.Observed)
		rc.Steps = append(rc.Steps, s)
		if s.Verdict != result.Pass {
			return fmt.Errorf("set-up %s %s: got %s", x.a.Name, x.a.Account, s.Observed)
		}
	}
	return nil
}

// do performs one action and judges it against exp.
func do(ctx context.Context, h host.Host, key *recKey, a host.Action, exp result.Outcome, detail string) *result.Step {
	s := &result.Step{Action: a.Name, Detail: describeAction(a, detail), Expected: exp}
	start := key.clock.Now()
	stop := key.capture(s)
	obs, notes, err := h.Do(ctx, a)
	stop()
	s.Duration = key.clock.Now().Sub(start)
	s.Observed, s.Notes = obs, notes
	switch {
	case err != nil:
		s.Verdict = result.Error
		s.Notes = append(s.Notes, "could not perform: "+err.Error())
	case exp.Equal(obs):
		s.Verdict = result.Pass
	default:
		s.Verdict = result.Fail
	}
	return s
}

// markAction renders an action for a trace mark: its name, then its parameters without PINs.
func markAction(a host.Action) string {
	if d := describeAction(a, ""); d != "" {
		return a.Name + " · " + d
	}
	return a.Name
}

// describeAction renders an action's parameters without its PINs.
func describeAction(a host.Action, prefix string) string {
	var parts []string
	if prefix != "" {
		parts = append(parts, prefix)
	}
	if a.Account != "" {
		parts = append(parts, "account "+a.Account)
	}
	if a.PIN != "" {
		parts = append(parts, "PIN typed")
	}
	if a.NewPIN != "" {
		parts = append(parts, "new PIN typed")
	}
	if a.Pick != "" {
		parts = append(parts, "picks "+a.Pick)
	}
	var keys []string
	for k := range a.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+a.Args[k])
	}
	return strings.Join(parts, ", ")
}

// judge sets the case verdict from its steps; on a key other than the scenario's own (diag set),
// a failure the key explains becomes key-incompatible with its causes.
func judge(ctx context.Context, c catalog.Case, key Key, diag *diagnosis, rc *result.Case) {
	if rc.Verdict == "" {
		rc.Verdict = result.Pass
		for _, s := range rc.Steps {
			if s.Verdict != result.Pass {
				rc.Verdict = result.Fail
				break
			}
		}
	}
	if diag != nil {
		diag.judge(ctx, c, key, rc)
	}
}

// resolveKeyAAGUID replaces "key" in the tenant's AAGUID lists with the AAGUID of the key under
// test, which only the runner knows (it may be a persona override or an external key).
func resolveKeyAAGUID(ctx context.Context, t host.Tenant, key Key) (host.Tenant, error) {
	if !slices.Contains(t.AAGUIDAllow, "key") && !slices.Contains(t.AAGUIDBlock, "key") {
		return t, nil
	}
	info, err := keyInfo(ctx, key)
	if err != nil {
		return t, fmt.Errorf("tenant key restriction: getInfo: %w", err)
	}
	if len(info.AAGUID) != 16 {
		return t, fmt.Errorf("tenant key restriction: the key reports no AAGUID")
	}
	h := hex.EncodeToString(info.AAGUID)
	aaguid := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	sub := func(list []string) []string {
		out := slices.Clone(list)
		for i, a := range out {
			if a == "key" {
				out[i] = aaguid
			}
		}
		return out
	}
	t.AAGUIDAllow, t.AAGUIDBlock = sub(t.AAGUIDAllow), sub(t.AAGUIDBlock)
	return t, nil
}
