package winmodel

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/rp"
	"github.com/fidolab/fidolab/scenarios/entra"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Option configures the model.
type Option func(*Target)

// WithTrustedRoots makes every case's tenant trust these attestation roots (besides the roots a
// RootedKey reports).
func WithTrustedRoots(roots ...*x509.Certificate) Option {
	return func(t *Target) { t.roots = append(t.roots, roots...) }
}

// WithoutRule builds the model without the gate rule id (Rules): the rules-table mutation test
// removes each rule in turn and checks that some case of the catalog then changes its outcome. An
// unknown id is an error at NewHost.
func WithoutRule(id string) Option {
	return func(t *Target) { t.without = append(t.without, id) }
}

// WithWallSlack adds d to the silence limit on keys read in wall time (a served or real key, not
// an in-process one): room for a key and a host that share a slow emulated machine, where wall time
// runs far slower than on the hardware Windows times. 0 by default.
func WithWallSlack(d time.Duration) Option {
	return func(t *Target) { t.wallSlack = max(d, 0) }
}

// RootedKey is a host.Key that knows its attestation root (an in-process emulator key:
// key.Auth.AttestationRoot()). The tenant trusts it, as Entra trusts a vendor root from FIDO MDS.
type RootedKey interface {
	AttestationRoots() []*x509.Certificate
}

// Target is the model host.Target.
type Target struct {
	roots   []*x509.Certificate
	without []string // rule ids left out (WithoutRule)
	rules   []Rule
	probes  []Probe // extra requests per path (WithProbes)
	// wallSlack widens the silence limit for keys read in wall time (WithWallSlack).
	wallSlack time.Duration

	mu      sync.Mutex
	tenants map[host.Key]*entra.Tenant // one organisation per key: every device of a case shares it
}

// New returns the model Target.
func New(opts ...Option) host.Target {
	t := &Target{tenants: map[host.Key]*entra.Tenant{}}
	for _, o := range opts {
		o(t)
	}
	for _, r := range Rules {
		if !slices.Contains(t.without, r.ID) {
			t.rules = append(t.rules, r)
		}
	}
	return t
}

// Name is "model".
func (t *Target) Name() string { return "model" }

// NewHost prepares a modelled device. Devices built on the same key share one Entra tenant, whose
// policy becomes cfg.Tenant from now on (host.Target's contract).
func (t *Target) NewHost(ctx context.Context, cfg host.Config, key host.Key) (host.Host, error) {
	if key == nil {
		return nil, fmt.Errorf("winmodel: no key")
	}
	for _, id := range t.without {
		if !slices.ContainsFunc(Rules, func(r Rule) bool { return r.ID == id }) {
			return nil, fmt.Errorf("winmodel: without rule %q: no such rule", id)
		}
	}
	ten, err := t.tenant(cfg.Tenant, key)
	if err != nil {
		return nil, fmt.Errorf("winmodel: tenant: %w", err)
	}
	field, err := fieldProbes(cfg)
	if err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, key: key, rules: t.rules, probes: append(field, t.probes...), wallSlack: t.wallSlack, tenant: ten, online: cfg.Online, cache: map[string]*cached{}}
	if _, err := rand.Read(h.salt[:]); err != nil {
		return nil, fmt.Errorf("winmodel: device salt: %w", err)
	}
	return h, nil
}

// tenant returns the key's organisation, created on first use, with policy p applied.
func (t *Target) tenant(p host.Tenant, key host.Key) (*entra.Tenant, error) {
	pol := entra.Policy{EnforceAttestation: p.EnforceAttestation, AAGUIDAllow: p.AAGUIDAllow, AAGUIDBlock: p.AAGUIDBlock,
		CounterMustIncrease: p.CounterMustIncrease}
	t.mu.Lock()
	defer t.mu.Unlock()
	if ten, ok := t.tenants[key]; ok {
		return ten, ten.SetPolicy(pol)
	}
	roots := append([]*x509.Certificate(nil), t.roots...)
	if rk, ok := key.(RootedKey); ok {
		roots = append(roots, rk.AttestationRoots()...)
	}
	ten, err := entra.New(pol, entra.WithTrustedRoots(roots...))
	if err != nil {
		return nil, err
	}
	t.tenants[key] = ten
	return ten, nil
}

// Forget drops the tenant of a key whose case has ended.
func (t *Target) Forget(key host.Key) {
	t.mu.Lock()
	delete(t.tenants, key)
	t.mu.Unlock()
}

// cached is what the device keeps after an online sign-in of one account with one credential:
// the hmac-secret output that protects the offline sign-in cache.
type cached struct {
	account string
	handle  []byte
	credID  []byte
	secret  []byte
}

// Host is one modelled Windows device.
type Host struct {
	cfg    host.Config
	key    host.Key
	rules  []Rule
	probes []Probe
	// wallSlack is Target.wallSlack.
	wallSlack time.Duration
	tenant    *entra.Tenant
	online    bool
	// session is the account signed in on the device ("" after sign-out); unlock needs it.
	session string
	// salt is the device's hmac-secret salt (CloudAP's offline-cache salt, one per device).
	salt  [32]byte
	cache map[string]*cached // by account + "/" + hex credential ID
	// sites are the other websites the user registered passkeys at (register-other-site).
	sites map[string]*rp.RP
	// others are other organisations' tenants the user registered the key with (register-other-tenant).
	others map[string]*entra.Tenant
}

// Tenant exposes the case's Entra tenant (for tests and reports).
func (h *Host) Tenant() *entra.Tenant { return h.tenant }

// Online reports the device's network state.
func (h *Host) Online() bool { return h.online }

// Session is the signed-in account, "" when nobody is.
func (h *Host) Session() string { return h.session }

// Close releases nothing: the key belongs to the runner.
func (h *Host) Close() error { return nil }

// notes collects the model's decisions for a step.
type notes []string

func (n *notes) add(format string, args ...any) { *n = append(*n, fmt.Sprintf(format, args...)) }

func notOffered(code, reason string) result.Outcome {
	return result.Outcome{Kind: host.KindNotOffered, Code: code, Reason: reason}
}

func fail(code, reason string) result.Outcome {
	return result.Outcome{Kind: host.KindError, Code: code, Reason: reason}
}

func done(reason string) result.Outcome { return result.Outcome{Kind: host.KindDone, Reason: reason} }

// Do performs one action.
func (h *Host) Do(ctx context.Context, a host.Action) (result.Outcome, []string, error) {
	var n notes
	a = normalize(a)
	if r := gate(h.rules, h.cfg, a); r != nil {
		inf := ""
		if r.Inferred {
			inf = " (inferred)"
		}
		n.add("gated by rule %s%s: %s [%s]", r.ID, inf, r.Condition, r.Source)
		return notOffered(r.Code, r.Condition), n, nil
	}
	var (
		out result.Outcome
		err error
	)
	switch a.Name {
	case host.ActRegister:
		out, err = h.register(ctx, a, &n)
	case host.ActLockScreenSignIn:
		out, err = h.logon(ctx, a, false, &n)
	case host.ActUnlock:
		out, err = h.logon(ctx, a, true, &n)
	case host.ActWebAuthnSignIn:
		out, err = h.webauthnSignIn(ctx, a, &n)
	case host.ActRemoteSignIn:
		n.add("%s with %s redirection: the browser sign-in inside the session reaches the local key", remoteName[via(a)], redirectionName[via(a)])
		out, err = h.webauthnSignIn(ctx, a, &n)
	case host.ActRegisterOtherSite:
		out, err = h.registerOtherSite(ctx, a, &n)
	case host.ActRegisterOtherTenant:
		out, err = h.registerOtherTenant(ctx, a, &n)
	case host.ActSetPIN:
		out, err = h.setPIN(ctx, a, &n)
	case host.ActChangePIN:
		out, err = h.changePIN(ctx, a, &n)
	case host.ActEnrollFingerprint:
		out, err = h.enrollFingerprint(ctx, a, &n)
	case host.ActResetKey:
		out, err = h.resetKey(ctx, &n)
	case host.ActGoOffline:
		h.online = false
		out = done("device offline")
	case host.ActGoOnline:
		h.online = true
		out = done("device online")
	case host.ActSignOut:
		n.add("signed out %q", h.session)
		h.session = ""
		out = done("signed out")
	case host.ActReplug:
		if err = h.key.Replug(ctx); err == nil {
			out = done("key replugged (power-up)")
		}
	case host.ActWait:
		out, err = wait(ctx, a, h.key)
	case host.ActRemoveKey:
		out, err = h.removeKey(ctx, a, &n)
	case host.ActBlockAAGUID, host.ActAllowAAGUID:
		out, err = h.restrictAAGUID(ctx, a, &n)
	default:
		return result.Outcome{}, n, fmt.Errorf("winmodel: unknown action %q", a.Name)
	}
	return out, n, err
}

var (
	remoteName      = map[string]string{"rdp": "Remote Desktop", "vdi": "Azure Virtual Desktop (VDI over RDP)", "citrix": "Citrix HDX"}
	redirectionName = map[string]string{"rdp": "WebAuthn", "vdi": "WebAuthn", "citrix": "FIDO2"}
)

// withArg returns a copy of args with k set to v.
func withArg(args map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range args {
		if key != k {
			out[key] = val
		}
	}
	return out
}

// wait lets time pass: on a key with its own clock (host.Clock) the clock moves forward, so a
// 10 s reset window costs no wall time; otherwise the model really waits.
func wait(ctx context.Context, a host.Action, key host.Key) (result.Outcome, error) {
	s, err := strconv.ParseFloat(a.Args["seconds"], 64)
	if err != nil || s < 0 {
		return result.Outcome{}, fmt.Errorf("winmodel: wait: seconds %q", a.Args["seconds"])
	}
	d := time.Duration(s * float64(time.Second))
	if c, ok := key.(host.Clock); ok {
		c.Advance(d)
		return done(fmt.Sprintf("waited %gs (key clock advanced)", s)), nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return result.Outcome{}, ctx.Err()
	case <-t.C:
	}
	return done(fmt.Sprintf("waited %gs", s)), nil
}

// openWithInfo connects to the key and reads getInfo, as Windows does before each operation. A key
// that answers getInfo with an error gives the step's outcome (out); err means no outcome at all.
func (h *Host) openWithInfo(ctx context.Context) (c *client.Client, info *ctap.GetInfoResponse, out *result.Outcome, err error) {
	if c, err = h.open(ctx); err != nil {
		return nil, nil, nil, err
	}
	if info, err = c.GetInfo(ctx); err != nil {
		o, err := outcomeOf("getInfo", err)
		return nil, nil, &o, err
	}
	return c, info, nil, nil
}

// open connects to the key as Windows does for each operation, through Windows' HID timeouts.
func (h *Host) open(ctx context.Context) (*client.Client, error) {
	c, err := h.key.Client(ctx, host.ClientOptions{HID: hidFor(h.key, SilenceLimit, h.wallSlack, clock.Real{})})
	if err != nil {
		return nil, fmt.Errorf("winmodel: open key: %w", err)
	}
	return c, nil
}
