// Package keyconn opens the key a host-side tool works on — replay, the vendor-key probe — by
// one spec: an emulated key in this process (a persona), a fidolab key served on a socket, a real
// key on hidraw or USB. Each hands out host connections (ctaphid.ReportConn), as a process opens
// the key's device node; what else a key can do (be replugged without a person, have its clock
// moved, tell its USB identity) is an optional interface.
package keyconn

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/transport/socket"
)

// Key is one key under test.
type Key interface {
	// Conn opens a new host connection.
	Conn(ctx context.Context) (ctaphid.ReportConn, error)
	// Describe says what the key is, for reports.
	Describe() string
	// Close releases the key (an emulated key is gone afterwards; a real one is left as it is).
	Close() error
}

// Replugger is a key that can be unplugged and plugged in again without a person: a power-up,
// which opens the reset window.
type Replugger interface {
	Replug(ctx context.Context) error
}

// Clocked is a key on a virtual clock: waiting costs no wall time, and the tool moves the clock.
type Clocked interface {
	Advance(d time.Duration)
	Now() time.Time
}

// Identified is a key that may know its USB identity (IDs, strings); ok is false when it does not.
type Identified interface {
	Identity() (hid persona.HID, ok bool)
}

// Client opens a connection, allocates a channel with CTAPHID_INIT and returns a CTAP client on it
// together with the CTAPHID client and what INIT answered. Closing conn is the caller's.
func Client(ctx context.Context, k Key, opts ...client.Option) (*client.Client, *ctaphid.Client, ctaphid.InitInfo, ctaphid.ReportConn, error) {
	conn, err := k.Conn(ctx)
	if err != nil {
		return nil, nil, ctaphid.InitInfo{}, nil, err
	}
	hid := ctaphid.NewClient(conn)
	info, err := hid.Init(ctx)
	if err != nil {
		_ = conn.Close()
		return nil, nil, info, nil, fmt.Errorf("%s: CTAPHID_INIT: %w", k.Describe(), err)
	}
	return client.New(hid, opts...), hid, info, conn, nil
}

// ErrUsage marks a key spec that cannot be right (a typo): the CLI exits 2 on it.
var ErrUsage = errors.New("bad key spec")

// Open opens a key by spec:
//
//	persona:NAME|FILE                        an emulated key in this process, fresh, on a virtual clock
//	socket:PATH | socket:tcp:HOST:PORT       a served fidolab (fidolab serve), optionally with
//	  [,control=HOST:PORT]                   its control API, through which it is replugged
//
// Real keys (hidraw:, usb:) are opened by the caller, which owns the person at the terminal.
func Open(spec string) (Key, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("%w: key %q: want persona:NAME, socket:PATH[,control=HOST:PORT], hidraw:/dev/hidrawN or usb:VID:PID", ErrUsage, spec)
	}
	switch kind {
	case "persona":
		p, err := persona.Load(rest)
		if err != nil {
			return nil, err
		}
		return NewEmulated(p, nil)
	case "socket":
		addr, opt, _ := strings.Cut(rest, ",")
		if !strings.HasPrefix(addr, "unix:") && !strings.HasPrefix(addr, "tcp:") {
			addr = "unix:" + addr
		}
		s := &Socket{Addr: addr}
		if opt != "" {
			ctl, ok := strings.CutPrefix(opt, "control=")
			if !ok || ctl == "" {
				return nil, fmt.Errorf("%w: key %q: unknown option %q (want control=HOST:PORT)", ErrUsage, spec, opt)
			}
			s.Control = ctl
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: key %q: unknown kind %q", ErrUsage, spec, kind)
}

// Emulated is an emulated key in this process on a virtual clock: a persona's processing delay,
// its keepalives, the reset window and token expiry pass without wall time.
type Emulated struct {
	Key   *emulator.Key
	clock *clock.Virtual
	sig   *signer.Signer
	own   bool
}

// EmulatedOptions tune NewEmulated.
type EmulatedOptions struct {
	// Signer is shared between keys when set; nil makes one for this key.
	Signer *signer.Signer
	// User answers presence and UV; nil means always yes.
	User user.Policy
	// Intercept wraps the authenticator (emulator.Options.Intercept).
	Intercept func(ctaphid.Handler) ctaphid.Handler
	// Clock is the key's virtual clock; nil makes one starting now.
	Clock *clock.Virtual
}

// NewEmulated opens a fresh in-memory key of persona p.
func NewEmulated(p *persona.Persona, o *EmulatedOptions) (*Emulated, error) {
	if o == nil {
		o = &EmulatedOptions{}
	}
	e := &Emulated{clock: o.Clock, sig: o.Signer}
	if e.clock == nil {
		e.clock = clock.NewVirtual(clock.Real{}.Now())
	}
	if e.sig == nil {
		e.sig, e.own = signer.New(), true
	}
	k, err := emulator.Open(emulator.Options{Persona: p, Signer: e.sig, Clock: e.clock, User: o.User, Intercept: o.Intercept})
	if err != nil {
		if e.own {
			e.sig.Close()
		}
		return nil, fmt.Errorf("persona %s: %w", p.Name, err)
	}
	e.Key = k
	return e, nil
}

// Conn opens an in-process host connection (a ctaphid.TimedReportConn: reports carry the key's time).
func (e *Emulated) Conn(context.Context) (ctaphid.ReportConn, error) { return e.Key.Connect(), nil }

// Describe names the persona.
func (e *Emulated) Describe() string { return "in-process persona " + e.Key.Persona.Name }

// Replug unplugs and replugs the key: a power-up.
func (e *Emulated) Replug(context.Context) error {
	if err := e.Key.SetPlugged(false); err != nil {
		return err
	}
	return e.Key.SetPlugged(true)
}

// Advance moves the key's clock.
func (e *Emulated) Advance(d time.Duration) { e.clock.Advance(d) }

// Now reads the key's clock.
func (e *Emulated) Now() time.Time { return e.clock.Now() }

// Identity is the persona's USB identity.
func (e *Emulated) Identity() (persona.HID, bool) { return e.Key.Persona.HID, true }

// Close closes the key.
func (e *Emulated) Close() error {
	err := e.Key.Close()
	if e.own {
		e.sig.Close()
	}
	return err
}

// Socket is a fidolab key served on a report socket (fidolab serve --listen), with its control
// API when Control is set.
type Socket struct {
	Addr    string // unix:PATH or tcp:HOST:PORT
	Control string // HOST:PORT of the control API, "" when unknown
}

// Conn dials the socket.
func (s *Socket) Conn(context.Context) (ctaphid.ReportConn, error) { return socket.Dial(s.Addr) }

// Describe names the socket.
func (s *Socket) Describe() string {
	if s.Control != "" {
		return "socket " + s.Addr + " (control " + s.Control + ")"
	}
	return "socket " + s.Addr
}

// Close does nothing: the served key is not ours.
func (s *Socket) Close() error { return nil }

// ErrNoReplug is returned by Replug when nothing can replug the key.
var ErrNoReplug = errors.New("the key cannot be replugged without a person: no control API (socket:PATH,control=HOST:PORT)")

// Replug switches the key off and on through its control API.
func (s *Socket) Replug(ctx context.Context) error {
	if s.Control == "" {
		return ErrNoReplug
	}
	for _, state := range []string{"off", "on"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.Control+"/power/"+state, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("replug through the control API: %w", err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("replug through the control API: %s answered %s", s.Control, resp.Status)
		}
	}
	return nil
}

// CanReplug reports whether k can be replugged at all: by itself (an emulated key, a control API)
// or by asking the person at the terminal (a real key, CanAskReplug).
func CanReplug(k Key) bool {
	switch r := k.(type) {
	case interface{ CanAskReplug() bool }:
		return r.CanAskReplug()
	case *Socket:
		return r.Control != ""
	case Replugger:
		return true
	}
	return false
}

// Unattended reports whether k can be replugged without a person.
func Unattended(k Key) bool {
	if r, ok := k.(interface{ CanReplug() bool }); ok {
		return r.CanReplug()
	}
	if s, ok := k.(*Socket); ok {
		return s.Control != ""
	}
	_, ok := k.(Replugger)
	return ok
}
