package runner

import (
	"context"
	"crypto/x509"
	"fmt"
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
// o.Record, when non-nil, sees every exchange; hidOpts tune the CTAPHID client.
func (cs *conns) open(ctx context.Context, conn ctaphid.ReportConn, o host.ClientOptions, hidOpts ...ctaphid.ClientOption) (*client.Client, error) {
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
	hid := ctaphid.NewClient(conn, hidOpts...)
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
