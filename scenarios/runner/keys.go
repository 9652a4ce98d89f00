package runner

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/transport/socket"
)

// Key is a key the runner hands to hosts for one case.
type Key interface {
	host.Key
	Close() error
}

// KeyFactory makes the key of each case.
type KeyFactory interface {
	// Open returns the key for one case of scenario s, in the state a fresh key is in.
	Open(ctx context.Context, s *catalog.Scenario) (Key, error)
	// Describe says what keys the factory makes, for result.Run.Key.
	Describe() string
	// Override names the persona or key under test when it is not each scenario's own ("" when
	// it is): failures it explains are then reported as key-incompatible.
	Override() string
	// Sequential is true when every case uses the same physical key, so cases cannot overlap.
	Sequential() bool
	// Close releases what the factory holds (the shared signer).
	Close() error
}

// InProcess makes a fresh in-memory emulated key per case, with the scenario's persona, or with
// override for every case when it is not nil. All keys share one signer (one nonce pool).
func InProcess(override *persona.Persona) KeyFactory {
	return &inprocFactory{override: override, sig: signer.New()}
}

// InProcessFault is InProcess(override) with a fault injected into every key: change edits its
// knobs (emulator.Knobs: keepalive, processing delay, the simulated user, failNext…) as soon as it
// is made, before the case's set-up. name says what the fault is, for reports; the run then
// targets a key other than the catalog's own, so the scenarios about a key of their own are left
// out and failures the key explains are key-incompatible.
func InProcessFault(override *persona.Persona, name string, change func(*emulator.Knobs)) KeyFactory {
	return &inprocFactory{override: override, sig: signer.New(), fault: name, knobs: change}
}

type inprocFactory struct {
	override *persona.Persona
	fault    string
	knobs    func(*emulator.Knobs)
	sig      *signer.Signer
	once     sync.Once
}

func (f *inprocFactory) Open(_ context.Context, s *catalog.Scenario) (Key, error) {
	p := f.override
	if p == nil && s != nil {
		p = s.Key.Persona
	}
	if p == nil {
		var err error
		if p, err = persona.Builtin("default"); err != nil {
			return nil, err
		}
	}
	k, err := newInprocKey(p, f.sig)
	if err != nil || f.knobs == nil {
		return k, err
	}
	if _, err := k.UpdateKnobs(func(n *emulator.Knobs) error { f.knobs(n); return nil }); err != nil {
		_ = k.Close()
		return nil, fmt.Errorf("fault %s: %w", f.fault, err)
	}
	return k, nil
}

func (f *inprocFactory) Describe() string {
	d := "in-process, each scenario's persona"
	if f.override != nil {
		d = "in-process persona " + f.override.Name
	}
	if f.fault != "" {
		d += " with fault " + f.fault
	}
	return d
}

func (f *inprocFactory) Override() string {
	var parts []string
	if f.override != nil {
		parts = append(parts, f.override.Name)
	}
	if f.fault != "" {
		parts = append(parts, "fault "+f.fault)
	}
	return strings.Join(parts, " + ")
}

func (f *inprocFactory) Sequential() bool { return false }

func (f *inprocFactory) Close() error {
	f.once.Do(f.sig.Close)
	return nil
}

// inprocKey is an emulated key on a virtual clock: a `wait` step advances it instead of sleeping,
// so the reset window is tested in microseconds, and the key's own waits (a slow persona's
// processing delay, keepalives, the simulated user) cost no wall time either.
type inprocKey struct {
	*emulator.Key
	clock *clock.Virtual
	conns conns
}

func newInprocKey(p *persona.Persona, sig *signer.Signer) (*inprocKey, error) {
	k := &inprocKey{clock: clock.NewVirtual(clock.Real{}.Now())}
	ek, err := emulator.Open(emulator.Options{Persona: p, Signer: sig, Clock: k.clock})
	if err != nil {
		return nil, fmt.Errorf("persona %s: %w", p.Name, err)
	}
	k.Key = ek
	return k, nil
}

// Advance moves the key's clock forward (host.Clock).
func (k *inprocKey) Advance(d time.Duration) { k.clock.Advance(d) }

// Now reads the key's clock (host.Clock): the times of a trace, the silences Windows measures.
func (k *inprocKey) Now() time.Time { return k.clock.Now() }

// AttestationRoot is the root of the key's batch attestation chain, for a tenant that trusts it.
func (k *inprocKey) AttestationRoot() *x509.Certificate { return k.Auth.AttestationRoot() }

func (k *inprocKey) setConnWrapper(f func(ctaphid.ReportConn) ctaphid.ReportConn) {
	k.conns.setConnWrapper(f)
}

func (k *inprocKey) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	return k.conns.open(ctx, k.Connect(), o)
}

func (k *inprocKey) Replug(context.Context) error {
	k.conns.closeAll()
	if err := k.SetPlugged(false); err != nil {
		return err
	}
	return k.SetPlugged(true)
}

func (k *inprocKey) Describe() string { return "in-process persona " + k.Persona.Name }

func (k *inprocKey) Close() error {
	k.conns.closeAll()
	return k.Key.Close()
}

// conns are the host connections a key has handed out: a replug or the end of the case closes
// them all, as unplugging a key ends every process's handle on it.
type conns struct {
	mu   sync.Mutex
	live []ctaphid.ReportConn
	wrap func(ctaphid.ReportConn) ctaphid.ReportConn // Options.WrapConn, bound to the case
}

// connWrapping keys let the runner wrap the host connections they open (Options.WrapConn).
type connWrapping interface {
	setConnWrapper(func(ctaphid.ReportConn) ctaphid.ReportConn)
}

func (cs *conns) setConnWrapper(f func(ctaphid.ReportConn) ctaphid.ReportConn) {
	cs.mu.Lock()
	cs.wrap = f
	cs.mu.Unlock()
}

// open keeps conn and returns a CTAP client on it with a fresh channel: the trace wrapper
// (Options.WrapConn) sits next to the key, the host's HID stack (o.HID) next to the client, so the
// trace records the key's reports and times as they are and the host reads through both.
// o.Record, when non-nil, sees every exchange.
func (cs *conns) open(ctx context.Context, conn ctaphid.ReportConn, o host.ClientOptions) (*client.Client, error) {
	cs.mu.Lock()
	if cs.wrap != nil {
		conn = cs.wrap(conn)
	}
	cs.mu.Unlock()
	if o.HID != nil {
		conn = o.HID(conn)
	}
	cs.mu.Lock()
	cs.live = append(cs.live, conn)
	cs.mu.Unlock()
	hid := ctaphid.NewClient(conn)
	if _, err := hid.Init(ctx); err != nil {
		return nil, fmt.Errorf("CTAPHID_INIT: %w", err)
	}
	var opts []client.Option
	if o.Record != nil {
		opts = append(opts, client.WithRecorder(o.Record))
	}
	return client.New(hid, opts...), nil
}

func (cs *conns) closeAll() {
	cs.mu.Lock()
	live := cs.live
	cs.live = nil
	cs.mu.Unlock()
	for _, c := range live {
		_ = c.Close()
	}
}

// External is a key outside the process reached over a report socket: spec is
// "socket:PATH", "socket:unix:PATH" or "socket:tcp:HOST:PORT", optionally followed by
// ",control=HOST:PORT" naming the key's control API (fidolab serve --control) for replugging.
// Every case uses the same key, so cases run one after another and the runner resets the key
// between them (replug, then authenticatorReset within the power-up window).
func External(spec string) (KeyFactory, error) {
	rest, ok := strings.CutPrefix(spec, "socket:")
	if !ok {
		return nil, fmt.Errorf("key %q: want socket:PATH (hidraw and usb keys are not supported yet)", spec)
	}
	addr, opt, _ := strings.Cut(rest, ",")
	if !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "tcp:") {
		addr = "unix:" + addr
	}
	f := &externalFactory{spec: spec, addr: addr}
	if opt != "" {
		ctl, ok := strings.CutPrefix(opt, "control=")
		if !ok || ctl == "" {
			return nil, fmt.Errorf("key %q: unknown option %q (want control=HOST:PORT)", spec, opt)
		}
		f.control = ctl
	}
	return f, nil
}

type externalFactory struct {
	spec, addr, control string
}

func (f *externalFactory) Open(ctx context.Context, _ *catalog.Scenario) (Key, error) {
	k := &externalKey{f: f}
	// A fresh key for each case: power-up, then reset inside the window.
	if err := k.Replug(ctx); err != nil {
		return nil, err
	}
	c, err := k.Client(ctx, host.ClientOptions{})
	if err != nil {
		return nil, err
	}
	if err := c.Reset(ctx); err != nil {
		return nil, fmt.Errorf("resetting %s between cases: %w", f.spec, err)
	}
	return k, nil
}

func (f *externalFactory) Describe() string { return f.spec }
func (f *externalFactory) Override() string { return f.spec }
func (f *externalFactory) Sequential() bool { return true }
func (f *externalFactory) Close() error     { return nil }

type externalKey struct {
	f     *externalFactory
	conns conns
}

func (k *externalKey) setConnWrapper(f func(ctaphid.ReportConn) ctaphid.ReportConn) {
	k.conns.setConnWrapper(f)
}

func (k *externalKey) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	conn, err := socket.Dial(k.f.addr)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.f.spec, err)
	}
	c, err := k.conns.open(ctx, conn, o)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.f.spec, err)
	}
	return c, nil
}

// Replug power-cycles the key through its control API; without one the key cannot be replugged
// and the user would have to do it.
func (k *externalKey) Replug(ctx context.Context) error {
	if k.f.control == "" {
		return fmt.Errorf("key %s: cannot replug without ,control=HOST:PORT", k.f.spec)
	}
	k.conns.closeAll()
	for _, state := range []string{"off", "on"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+k.f.control+"/power/"+state, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("key %s: replug: %w", k.f.spec, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("key %s: replug: control API answered %s", k.f.spec, resp.Status)
		}
	}
	return nil
}

func (k *externalKey) Describe() string { return k.f.spec }
func (k *externalKey) Close() error     { k.conns.closeAll(); return nil }
