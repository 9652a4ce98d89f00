package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/transport/socket"
)

// ErrUsage marks a key spec that cannot work at all (a typo, a socket key without its control
// API): the CLI reports it once, as a usage error, before any case runs. errors.Is finds it.
var ErrUsage = errors.New("bad key spec")

type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

func usageErr(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

// SkipError marks a case the runner did not run on purpose (it would have erased a key without
// permission, or needs a replug nobody can do); the report lists it as skipped with Reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Asker is the person at the terminal, when there is one.
type Asker interface {
	// Confirm shows msg and asks a yes/no question; it answers false unless the person says yes.
	Confirm(ctx context.Context, msg string) (bool, error)
	// Tell shows an instruction ("unplug and replug the key", "touch the key").
	Tell(msg string)
}

// KeyOptions say what the runner may do to a key it is given.
type KeyOptions struct {
	// Destructive allows erasing a key that is not empty (a PIN, credentials) without asking.
	Destructive bool
	// Ask is the person at a terminal: asked before a key that is not empty is erased, and to
	// replug a key that has no control API. Nil means nobody is there (CI): the key is refused
	// instead, and cases that need a replug are skipped.
	Ask Asker
	// PIN is the key's current PIN when the user gave it (FIDOLAB_KEY_PIN): with it the refusal
	// lists every site whose credentials would be erased.
	PIN string
	// ReplugTimeout bounds the wait for a person to replug the key (default 2 minutes).
	ReplugTimeout time.Duration
	// Clock paces the waits for the key (replug polls, retries, timeouts); nil means the wall clock.
	Clock clock.Clock
}

// External is ExternalKey with the default options: nothing is erased without permission and
// nobody is asked.
func External(spec string) (KeyFactory, error) { return ExternalKey(spec, KeyOptions{}) }

// ExternalKey makes the factory of a key outside the process. spec is
//
//	socket:PATH | socket:unix:PATH | socket:tcp:HOST:PORT   a served key (fidolab serve), with ,control=
//	hidraw:/dev/hidrawN (or hidraw: for the only FIDO key)   a key on Linux's hidraw
//	usb:VID:PID[:SERIAL]                                      a key through libusb (build tag gousb)
//
// each optionally followed by ",control=HOST:PORT" (or ",control=unix:PATH"), the key's control
// API (fidolab serve --control), through which it is power-cycled, and ",token=FILE" when that API
// wants a bearer token (fidolab serve --control-token). Every case uses the same key, so cases run one
// after another; before the first, the key is inspected and a key that is not empty is erased only
// with opts.Destructive or the person's yes. Between cases the key is brought back to empty: a
// power-up, then authenticatorReset within its window.
func ExternalKey(spec string, opts KeyOptions) (KeyFactory, error) {
	return newRealFactory(spec, opts, true)
}

// newRealFactory parses spec; needControl refuses a served key without its control API (the runner
// must power-cycle it between cases; Borrow does not).
func newRealFactory(spec string, opts KeyOptions, needControl bool) (*realFactory, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, usageErr("key %q: want socket:PATH,control=HOST:PORT, hidraw:/dev/hidrawN or usb:VID:PID[:SERIAL]", spec)
	}
	addr, optStr, _ := strings.Cut(rest, ",")
	var control, tokenFile string
	if optStr != "" {
		for _, o := range strings.Split(optStr, ",") {
			if v, ok := strings.CutPrefix(o, "token="); ok && v != "" && tokenFile == "" {
				tokenFile = v // the control API's bearer token (controlapi.go)
				continue
			}
			v, ok := strings.CutPrefix(o, "control=")
			if !ok || v == "" || control != "" {
				return nil, usageErr("key %q: unknown option %q (want control=HOST:PORT or token=FILE)", spec, o)
			}
			control = v
		}
	}
	if tokenFile != "" && control == "" {
		return nil, usageErr("key %q: token= is for the control API: add ,control=HOST:PORT", spec)
	}
	f := &realFactory{spec: spec, opts: opts, clock: clock.Or(opts.Clock)}
	if f.opts.ReplugTimeout <= 0 {
		f.opts.ReplugTimeout = 2 * time.Minute
	}
	var err error
	switch kind {
	case "socket":
		if !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "tcp:") {
			addr = "unix:" + addr
		}
		if control == "" && needControl {
			return nil, usageErr("key %q: a served key is power-cycled between cases through its control API: "+
				"add ,control=HOST:PORT (the address given to fidolab serve --control)", spec)
		}
		f.dev = &socketDevice{addr: addr}
	case "hidraw":
		f.dev, err = newHidrawDevice(addr, f.clock)
	case "usb":
		f.dev, err = newUSBDevice(addr, f.clock)
	default:
		return nil, usageErr("key %q: unknown kind %q (want socket, hidraw or usb)", spec, kind)
	}
	if err != nil {
		return nil, usageErr("key %q: %v", spec, err)
	}
	switch {
	case control != "":
		if f.power, err = newControlPower(control, tokenFile); err != nil {
			return nil, fmt.Errorf("key %q: %w", spec, err)
		}
	case opts.Ask != nil:
		f.power = &personPower{ask: opts.Ask, dev: f.dev, timeout: f.opts.ReplugTimeout, clock: f.clock}
	default:
		f.power = noPower{}
	}
	return f, nil
}

// device is the way to one external key.
type device interface {
	// dial opens a new connection, finding the key again if a replug moved it.
	dial(ctx context.Context) (ctaphid.ReportConn, error)
	// waitReplug returns once the key has gone away and come back (a person replugging it).
	waitReplug(ctx context.Context) error
	describe() string
}

type socketDevice struct{ addr string }

func (d *socketDevice) dial(context.Context) (ctaphid.ReportConn, error) { return socket.Dial(d.addr) }
func (d *socketDevice) waitReplug(context.Context) error {
	return errors.New("a served key has no plug: use its control API")
}
func (d *socketDevice) describe() string { return "socket " + d.addr }

// power is how a key gets a power-up (which opens its reset window).
type power interface {
	cycle(ctx context.Context, dev device) error
	// unattended is true when no person is needed, so the factory may power-cycle freely.
	unattended() bool
}

// controlPower switches the key off and on through its control API (newControlPower).
type controlPower struct {
	addr  string       // Host of the API: HOST:PORT, or localhost on a unix socket
	token string       // bearer token, "" for none
	http  *http.Client // dials the unix socket when there is one
}

func (p *controlPower) unattended() bool { return true }

func (p *controlPower) cycle(ctx context.Context, _ device) error {
	for _, state := range []string{"off", "on"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.addr+"/power/"+state, nil)
		if err != nil {
			return err
		}
		if p.token != "" {
			req.Header.Set("Authorization", "Bearer "+p.token)
		}
		resp, err := p.http.Do(req)
		if err != nil {
			return fmt.Errorf("replug through the control API: %w", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("replug through the control API: %s answered %s", p.addr, resp.Status)
		}
	}
	return nil
}

// personPower asks the person at the terminal to replug the key and watches it go and come back.
type personPower struct {
	ask     Asker
	dev     device
	timeout time.Duration
	clock   clock.Clock
}

func (p *personPower) unattended() bool { return false }

func (p *personPower) cycle(ctx context.Context, dev device) error {
	p.ask.Tell(fmt.Sprintf("Unplug the key (%s) and plug it back in (waiting up to %s)…", dev.describe(), p.timeout))
	wctx, cancel := clock.WithTimeout(ctx, p.clock, p.timeout)
	defer cancel()
	if err := dev.waitReplug(wctx); err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(wctx), context.DeadlineExceeded) {
			return &SkipError{Reason: fmt.Sprintf("needs the key unplugged and replugged, and nobody did within %s", p.timeout)}
		}
		return fmt.Errorf("waiting for the key to be replugged: %w", err)
	}
	p.ask.Tell("Key is back.")
	return nil
}

// noPower is a key nobody can replug: no control API and no terminal.
type noPower struct{}

func (noPower) unattended() bool { return false }

func (noPower) cycle(context.Context, device) error {
	return &SkipError{Reason: "needs the key unplugged and replugged (a power-up), but it has no control API " +
		"(,control=HOST:PORT) and there is no terminal to ask someone"}
}

// realFactory makes the cases' keys out of one external key.
type realFactory struct {
	spec  string
	opts  KeyOptions
	dev   device
	power power
	clock clock.Clock

	mu      sync.Mutex // serialises Preflight and Open (which may wait minutes for a person)
	checked bool
	refused string // why the key may not be touched; every case is skipped with it

	stateMu   sync.Mutex // guards dirty and lastTouch, updated from clients' goroutines
	dirty     string     // what the last case may have left on the key ("" when empty)
	lastTouch time.Time
}

func (f *realFactory) Describe() string { return f.spec }
func (f *realFactory) Override() string { return f.spec }
func (f *realFactory) Sequential() bool { return true }
func (f *realFactory) Close() error     { return nil }

// Preflight inspects the key before the first case and decides whether the run may erase it. A
// refusal is a *SkipError naming what would be erased; the run then skips every case with it.
func (f *realFactory) Preflight(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.preflight(ctx)
}

func (f *realFactory) preflight(ctx context.Context) error {
	if f.checked {
		if f.refused != "" {
			return &SkipError{Reason: f.refused}
		}
		return nil
	}
	conn, err := f.dev.dial(ctx)
	if err != nil {
		return fmt.Errorf("key %s: %w", f.spec, err)
	}
	defer conn.Close()
	hid := ctaphid.NewClient(conn)
	if _, err := hid.Init(ctx); err != nil {
		return fmt.Errorf("key %s: CTAPHID_INIT: %w", f.spec, err)
	}
	contents, err := Inspect(ctx, client.New(hid), f.opts.PIN)
	if err != nil {
		return fmt.Errorf("key %s: inspecting it before the run: %w", f.spec, err)
	}
	f.checked = true
	if contents.Empty() {
		return nil
	}
	f.markDirty("what was on it before the run")
	if f.opts.Destructive {
		return nil
	}
	lines := contents.Lines()
	what := "The key " + f.spec + " is not empty; every case starts with authenticatorReset, which erases:\n  - " +
		strings.Join(lines, "\n  - ")
	if f.opts.Ask != nil {
		ok, err := f.opts.Ask.Confirm(ctx, what+"\nErase it and run the cases?")
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		f.refused = "the key is not empty (" + strings.Join(lines, "; ") + ") and erasing it was declined"
		return &SkipError{Reason: f.refused}
	}
	f.refused = "the key is not empty (" + strings.Join(lines, "; ") + "); --destructive not given, so it was not erased"
	return &SkipError{Reason: f.refused}
}

func (f *realFactory) Open(ctx context.Context, _ *catalog.Scenario) (Key, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.preflight(ctx); err != nil {
		return nil, err
	}
	// A key whose power can be cycled unattended is reset before every case (cheap and certain);
	// otherwise only when a case may have left something on it, since a person must replug it.
	if dirty := f.dirtyWith(); dirty != "" || f.power.unattended() {
		if err := f.power.cycle(ctx, f.dev); err != nil {
			var skip *SkipError
			if errors.As(err, &skip) {
				return nil, &SkipError{Reason: "the key still holds " + dirty + " and resetting it " + skip.Reason}
			}
			return nil, fmt.Errorf("key %s: %w", f.spec, err)
		}
		if err := f.reset(ctx); err != nil {
			return nil, err
		}
		f.stateMu.Lock()
		f.dirty = ""
		f.stateMu.Unlock()
	}
	return &realKey{f: f}, nil
}

// reset runs authenticatorReset right after a power-up, asking the person to touch the key when it
// waits for presence.
func (f *realFactory) reset(ctx context.Context) error {
	conn, err := f.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	hid := ctaphid.NewClient(conn, ctaphid.WithKeepalive(f.keepalive))
	if _, err := hid.Init(ctx); err != nil {
		return fmt.Errorf("key %s: CTAPHID_INIT: %w", f.spec, err)
	}
	if err := client.New(hid).Reset(ctx); err != nil {
		return fmt.Errorf("resetting %s between cases: %w", f.spec, err)
	}
	return nil
}

// dial opens the key, waiting a little for it to come back after a power-up.
func (f *realFactory) dial(ctx context.Context) (ctaphid.ReportConn, error) {
	wctx, cancel := clock.WithTimeout(ctx, f.clock, 10*time.Second)
	defer cancel()
	for {
		conn, err := f.dev.dial(wctx)
		if err == nil {
			return conn, nil
		}
		if f.clock.Sleep(wctx, 50*time.Millisecond) != nil {
			return nil, fmt.Errorf("key %s: %w", f.spec, err)
		}
	}
}

// keepalive tells the person to touch the key when it waits for presence (at most every 5 s).
func (f *realFactory) keepalive(status byte) {
	const upNeeded = 2 // CTAPHID_KEEPALIVE status: waiting for user presence
	if f.opts.Ask == nil || status != upNeeded {
		return
	}
	f.stateMu.Lock()
	now := f.clock.Now()
	tell := now.Sub(f.lastTouch) > 5*time.Second
	if tell {
		f.lastTouch = now
	}
	f.stateMu.Unlock()
	if tell {
		f.opts.Ask.Tell("Touch the key.")
	}
}

// markDirty records that a case changed what is on the key.
func (f *realFactory) markDirty(what string) {
	f.stateMu.Lock()
	if f.dirty == "" {
		f.dirty = what
	}
	f.stateMu.Unlock()
}

// dirtyWith says what may be on the key ("" when it is known to be empty).
func (f *realFactory) dirtyWith() string {
	f.stateMu.Lock()
	defer f.stateMu.Unlock()
	return f.dirty
}

// realKey is the external key during one case.
type realKey struct {
	f *realFactory

	conns conns
	mu    sync.Mutex
	skip  string
}

func (k *realKey) setConnWrapper(f func(ctaphid.ReportConn) ctaphid.ReportConn) {
	k.conns.setConnWrapper(f)
}

func (k *realKey) Client(ctx context.Context, o host.ClientOptions) (*client.Client, error) {
	conn, err := k.f.dial(ctx)
	if err != nil {
		return nil, err
	}
	rec := o.Record
	o.Record = func(e client.Exchange) {
		if what := changes(e); what != "" {
			k.f.markDirty(what)
		}
		if rec != nil {
			rec(e)
		}
	}
	c, err := k.conns.open(ctx, conn, o, ctaphid.WithKeepalive(k.f.keepalive))
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", k.f.spec, err)
	}
	return c, nil
}

// Replug power-cycles the key: through its control API, or by asking the person at the terminal.
// With neither, the case is skipped (SkipReason).
func (k *realKey) Replug(ctx context.Context) error {
	k.dropConns()
	err := k.f.power.cycle(ctx, k.f.dev)
	var skip *SkipError
	if errors.As(err, &skip) {
		k.mu.Lock()
		k.skip = "the case " + skip.Reason
		k.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("key %s: %w", k.f.spec, err)
	}
	return nil
}

// SkipReason says why the case could not be run as written ("" when it could).
func (k *realKey) SkipReason() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.skip
}

func (k *realKey) dropConns() { k.conns.closeAll() }

func (k *realKey) Describe() string { return k.f.spec }
func (k *realKey) Close() error     { k.dropConns(); return nil }

// changes says what an exchange may have left on the key ("" when it only read): anything but
// getInfo, assertions, selection, PIN/UV retry counts, key agreement and large-blob reads.
func changes(e client.Exchange) string {
	if e.U2F {
		return "" // U2F keeps nothing on the key but its counter
	}
	switch e.Cmd {
	case ctap.CmdGetInfo, ctap.CmdGetAssertion, ctap.CmdGetNextAssertion, ctap.CmdSelection:
		return ""
	case ctap.CmdClientPIN:
		if sub, ok := asUint(requestField(e.Request, 2)); ok { // subCommand
			switch sub {
			case ctap.PINGetRetries, ctap.PINGetKeyAgreement, ctap.PINGetUVRetries:
				return ""
			}
		}
		return "a PIN (or its retry counter) set by the last case"
	case ctap.CmdLargeBlobs:
		if requestField(e.Request, 2) == nil { // no "set": a read
			return ""
		}
		return "large-blob data written by the last case"
	case ctap.CmdMakeCredential:
		return "credentials made by the last case"
	}
	return "what " + e.Command + " changed in the last case"
}

func asUint(v any) (uint64, bool) {
	switch n := v.(type) {
	case uint64:
		return n, true
	case int64:
		return uint64(n), n >= 0
	}
	return 0, false
}

// requestField returns a field of a request's CBOR parameter map, nil when absent or undecodable.
func requestField(req []byte, key uint64) any {
	if len(req) < 2 {
		return nil
	}
	var m map[uint64]any
	if err := ctap.Unmarshal(req[1:], &m); err != nil {
		return nil
	}
	return m[key]
}
