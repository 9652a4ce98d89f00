// Package emulator assembles one complete emulated key — persona, persistent state, simulated user,
// authenticator and its CTAPHID device — on one clock, with the knobs a lab needs in one struct
// (Knobs: power, the user, CTAPHID timing, processing delay, faults). Transports (socket, UHID,
// USB/IP, …) serve a Key's Device; tests and the scenario runner connect to it in-process.
package emulator

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator"
	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/inproc"
)

// Options configure Open.
type Options struct {
	// Persona is the kind of key; nil means the built-in "default".
	Persona *persona.Persona
	// StatePath is the state file; "" keeps the state in memory only.
	StatePath string
	// User is the initial simulated-user policy; nil means always yes.
	User user.Policy
	// Signer is shared between keys when set (one nonce pool for many in-process keys).
	Signer *signer.Signer
	// Logger gets one debug line per command; nil discards.
	Logger *slog.Logger
	// Observer sees every CTAP exchange (for traces).
	Observer authenticator.Observer
	// DeviceOptions tune the CTAPHID layer (initial timing; Key.SetKnobs changes it later).
	DeviceOptions []ctaphid.Option
	// Clock is the key's clock: CTAPHID timeouts and keepalives, token expiry, the reset window,
	// the simulated user's and the faults' delays. nil means the wall clock, as for a served key;
	// an in-process key on a clock.Virtual spends no wall time on any of them.
	Clock clock.Clock
	// StoreOptions tune the state store, e.g. store.WithStateKey to seal the state file.
	StoreOptions []store.Option
	// Intercept, when set, wraps the authenticator: it sees every request after the knobs'
	// delay and faults and may answer it itself (fidolab replay --as-key answers as a recorded
	// key did).
	Intercept func(ctaphid.Handler) ctaphid.Handler
}

// Key is one emulated key. Its run-time knobs (power, user, timing, faults) are read and set
// as a whole with Knobs and SetKnobs.
type Key struct {
	Persona *persona.Persona
	Store   store.Store
	Auth    *authenticator.Authenticator
	Device  *ctaphid.Device
	// User is the simulated user; Touch and Untouch are its events. Its policy and finger are
	// knobs.
	User  *user.Switch
	path  string
	clock clock.Clock

	initial Knobs      // as opened, for ResetFaults
	set     sync.Mutex // one knob update at a time
	fmu     sync.Mutex
	faults  faults

	mu     sync.Mutex
	closed bool

	watchMu  sync.Mutex
	watchers map[int]func(plugged bool)
	nextW    int
}

// Open builds a key. With a StatePath the file is created (mode 0600) or reopened.
func Open(o Options) (*Key, error) {
	var (
		st  store.Store
		err error
	)
	if o.StatePath == "" {
		st = store.NewMemory(o.StoreOptions...)
	} else if st, err = store.OpenFile(o.StatePath, o.StoreOptions...); err != nil {
		return nil, fmt.Errorf("state %s: %w", o.StatePath, err)
	}
	p, err := choosePersona(st, o.Persona)
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("state %s: %w", o.StatePath, err)
	}
	pol := o.User
	if pol == nil {
		pol = user.Always
	}
	sw := user.NewSwitch(pol)
	a, err := authenticator.New(authenticator.Config{
		Persona: p, Store: st, User: sw, Signer: o.Signer, Logger: o.Logger, Observer: o.Observer, Clock: o.Clock,
	})
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	k := &Key{Persona: p, Store: st, Auth: a, User: sw, path: o.StatePath, clock: clock.Or(o.Clock)}
	// The persona's quirks are the initial values of their knobs.
	devOpts := append([]ctaphid.Option{ctaphid.WithClock(k.clock)}, o.DeviceOptions...)
	if p.Quirks.NoKeepalive {
		devOpts = append(devOpts, ctaphid.WithoutKeepalive())
	}
	k.faults.delay = time.Duration(p.Quirks.ProcessingDelayMs) * time.Millisecond
	var inner ctaphid.Handler = a
	if o.Intercept != nil {
		inner = o.Intercept(a)
	}
	k.Device = ctaphid.NewDevice(&knobHandler{inner: inner, k: k, clock: k.clock}, a.DeviceInfo(), devOpts...)
	k.initial = k.Knobs()
	return k, nil
}

// choosePersona reconciles the persona asked for with the one a state file was created with: a
// key's AAGUID and attestation must not change under its credentials.
func choosePersona(st store.Store, want *persona.Persona) (*persona.Persona, error) {
	stored, err := StoredPersona(st)
	if err != nil {
		// A persona recorded by an earlier fidolab may break a rule added since; the key and its
		// credentials are still good. A persona given now with the same name and AAGUID (the
		// recorded one, corrected) replaces the record; nothing else is guessed.
		if want == nil || !sameIdentity(st, want) {
			return nil, fmt.Errorf("%w\n(to keep this key, serve it once with --persona FILE: the persona corrected, with the same name and AAGUID)", err)
		}
		if err := savePersona(st, want); err != nil {
			return nil, err
		}
		return want, nil
	}
	switch {
	case want == nil && stored != nil:
		return stored, nil
	case want == nil:
		if want, err = persona.Builtin("default"); err != nil {
			return nil, err
		}
	case stored != nil && (stored.Name != want.Name || stored.AAGUID != want.AAGUID):
		return nil, fmt.Errorf("created as persona %q (AAGUID %s); it cannot become %q: use --persona %s or a new state file",
			stored.Name, stored.AAGUID, want.Name, stored.Name)
	}
	if stored == nil {
		if err := savePersona(st, want); err != nil {
			return nil, err
		}
	}
	return want, nil
}

// Connect opens an in-process host connection, as a process opening the key's hidraw node.
func (k *Key) Connect() ctaphid.ReportConn { return inproc.Connect(k.Device) }

// SetPlugged unplugs (false) or replugs (true) the key: unplugging drops every channel and request;
// replugging is a power-up, so the PIN power-cycle counter clears and the reset window restarts.
// Only a change is a change: plugging in a key that is plugged in does nothing, so it cannot lift
// PIN_AUTH_BLOCKED without the off→on cycle a real key needs (issue 9 item 3).
func (k *Key) SetPlugged(on bool) error {
	k.set.Lock()
	defer k.set.Unlock()
	return k.setPlugged(on)
}

// setPlugged is SetPlugged with k.set held.
func (k *Key) setPlugged(on bool) error {
	if on == k.Device.Powered() {
		return nil
	}
	k.Device.SetPowered(on)
	var err error
	if on {
		err = k.Auth.PowerCycle()
	}
	k.notifyPlug(on)
	return err
}

// WatchPlug calls fn with the new state after every SetPlugged (and with false when the key is
// closed), until stop is called: a transport that shows the key on a bus (usb-redir, USB/IP,
// UHID, a gadget) sends the host a disconnect or a connect. fn runs on the caller of SetPlugged
// and must not call SetPlugged.
func (k *Key) WatchPlug(fn func(plugged bool)) (stop func()) {
	k.watchMu.Lock()
	defer k.watchMu.Unlock()
	if k.watchers == nil {
		k.watchers = map[int]func(bool){}
	}
	id := k.nextW
	k.nextW++
	k.watchers[id] = fn
	return func() {
		k.watchMu.Lock()
		defer k.watchMu.Unlock()
		delete(k.watchers, id)
	}
}

func (k *Key) notifyPlug(on bool) {
	k.watchMu.Lock()
	fns := make([]func(bool), 0, len(k.watchers))
	for _, fn := range k.watchers {
		fns = append(fns, fn)
	}
	k.watchMu.Unlock()
	for _, fn := range fns {
		fn(on)
	}
}

// Plugged reports whether the key is plugged in.
func (k *Key) Plugged() bool { return k.Device.Powered() }

// StatePath is the state file, "" for an in-memory key.
func (k *Key) StatePath() string { return k.path }

// Close unplugs the key and releases its state (the file lock, for a file-backed key).
func (k *Key) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	k.Device.SetPowered(false)
	k.notifyPlug(false)
	return errors.Join(k.Auth.Close(), k.Store.Close())
}

// CheckStateFile reports an error when path exists with permissions wider than 0600.
func CheckStateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %v, want 0600", path, fi.Mode().Perm())
	}
	return nil
}
