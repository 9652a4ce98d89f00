// Package authenticator is the emulated security key: the CTAP2 and CTAP1 command handlers, the
// volatile state a real key keeps in RAM (PIN token, key agreement key, pending getNextAssertion,
// enumerations), and its persistent state behind package store. It knows nothing of transports:
// it implements ctaphid.Handler and any transport can carry it.
package authenticator

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// Config assembles a key. Persona and Store are required; everything else has a default.
type Config struct {
	Persona *persona.Persona
	Store   store.Store
	// User answers presence and UV questions; nil means user.Always.
	User user.Policy
	// Signer is the shared fast ECDSA signer; nil creates one owned (and closed) by the key.
	Signer *signer.Signer
	// Rand is the randomness source for everything but signature nonces; nil means crypto/rand.
	Rand io.Reader
	// Clock times the PIN token, the reset window, the getNextAssertion timer and the simulated
	// user's waits; nil means the wall clock.
	Clock clock.Clock
	// Logger receives one debug line per command; it never receives secrets.
	Logger *slog.Logger
	// Observer, when set, is told about every CTAP request and response (for traces).
	Observer Observer
}

// Observer sees every request and response that crosses the key's command interface.
type Observer interface {
	Exchange(cmd ctap.Command, req, resp []byte, status ctap.Status, took time.Duration)
}

// Authenticator is one emulated key.
type Authenticator struct {
	p       *persona.Persona
	st      store.Store
	user    user.Policy
	sig     *signer.Signer
	ownSig  bool
	rand    io.Reader
	clock   clock.Clock
	log     *slog.Logger
	observe Observer

	// mu guards the volatile state below. The CTAPHID layer runs one request at a time, but
	// PowerCycle and the control API arrive from other goroutines.
	mu      sync.Mutex
	powerUp time.Time
	volatile

	// core holds what the credential commands derive once: credential-ID keys and attestation.
	core coreState
}

// volatile is the state a hardware key loses at power-off.
type volatile struct {
	keyAgreement   pinKeyAgreement
	token          pinToken
	pinFailsInBoot int // consecutive wrong PINs since power-up (3 → PIN_AUTH_BLOCKED until power cycle)
	uvFailsInBoot  int
	next           *assertionQueue
	cmEnum         credMgmtEnum
	bioEnroll      *bioEnrollment
	largeBlobWrite *largeBlobWrite
	quirkBoot      quirkBoot // the persona quirks' per-power-up state (quirks.go)
}

// New creates a key from cfg. The key is "plugged in" at the moment New returns.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Persona == nil {
		return nil, errors.New("authenticator: no persona")
	}
	if cfg.Store == nil {
		return nil, errors.New("authenticator: no store")
	}
	if err := cfg.Persona.Validate(); err != nil {
		return nil, err
	}
	if err := checkAlgorithms(cfg.Persona); err != nil {
		return nil, err
	}
	a := &Authenticator{
		p: cfg.Persona, st: cfg.Store, user: cfg.User, sig: cfg.Signer, rand: cfg.Rand,
		clock: clock.Or(cfg.Clock), log: cfg.Logger, observe: cfg.Observer,
	}
	if a.user == nil {
		a.user = user.Always
	}
	if a.sig == nil {
		a.sig, a.ownSig = signer.New(), true
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if err := a.initAttestation(); err != nil {
		return nil, fmt.Errorf("authenticator: attestation: %w", err)
	}
	if err := a.PowerCycle(); err != nil {
		return nil, err
	}
	return a, nil
}

// Persona returns the persona the key was built from.
func (a *Authenticator) Persona() *persona.Persona { return a.p }

// Store returns the key's persistent state.
func (a *Authenticator) Store() store.Store { return a.st }

// Close releases what the key owns (its signer, not its store).
func (a *Authenticator) Close() error {
	if a.ownSig {
		a.sig.Close()
	}
	return nil
}

// PowerCycle unplugs and replugs the key: all volatile state is lost, the PIN power-cycle
// counter clears, a new key-agreement key is made and the reset window restarts.
func (a *Authenticator) PowerCycle() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.volatile = volatile{}
	a.powerUp = a.clock.Now()
	return a.regenerateKeyAgreement()
}

// DeviceInfo is what CTAPHID_INIT reports about this key.
func (a *Authenticator) DeviceInfo() ctaphid.DeviceInfo {
	caps := byte(0)
	if a.p.HID.Wink {
		caps |= ctaphid.CapWink
	}
	if a.p.CTAP2 {
		caps |= ctaphid.CapCBOR
		if !a.p.U2F {
			caps |= ctaphid.CapNMsg
		}
	}
	return ctaphid.DeviceInfo{Major: a.p.HID.DeviceMajor, Minor: a.p.HID.DeviceMinor, Build: a.p.HID.DeviceBuild, Capabilities: caps}
}

// Wink implements ctaphid.Handler: a real key blinks; the emulator logs it.
func (a *Authenticator) Wink() { a.log.Info("wink") }

// commands is every CTAP2 command the key answers and the method that handles it; CTAP1/U2F
// (CTAPHID_MSG) is HandleMSG in u2f.go. offered says whether a persona has the command at all
// (nil: every CTAP2 persona); a command not offered, or not listed, is CTAP1_ERR_INVALID_COMMAND.
// Each handler is in the file named after its command.
var commands = map[ctap.Command]command{
	ctap.CmdMakeCredential:   {handle: (*Authenticator).makeCredential},
	ctap.CmdGetAssertion:     {handle: (*Authenticator).getAssertion},
	ctap.CmdGetNextAssertion: {handle: (*Authenticator).getNextAssertion},
	ctap.CmdGetInfo:          {handle: (*Authenticator).getInfo},
	ctap.CmdClientPIN:        {handle: (*Authenticator).clientPIN},
	ctap.CmdReset:            {handle: (*Authenticator).reset},
	ctap.CmdBioEnrollment: {handle: (*Authenticator).bioEnrollment,
		offered: func(p *persona.Persona) bool { return p.BuiltInUV && p.Has(ctap.VersionFIDO21) }},
	ctap.CmdCredentialManagement: {handle: (*Authenticator).credentialManagement,
		offered: func(p *persona.Persona) bool { return p.CredMgmt }},
	ctap.CmdSelection: {handle: (*Authenticator).selection,
		offered: func(p *persona.Persona) bool { return p.Selection }},
	ctap.CmdLargeBlobs: {handle: (*Authenticator).largeBlobs,
		offered: func(p *persona.Persona) bool { return p.LargeBlobs }},
	ctap.CmdConfig: {handle: (*Authenticator).config,
		offered: func(p *persona.Persona) bool { return p.Config }},
	// The FIDO_2_1_PRE previews: the same protocols under vendor command numbers.
	ctap.CmdBioEnrollmentPre: {handle: (*Authenticator).bioEnrollment,
		offered: func(p *persona.Persona) bool { return p.BuiltInUV && p.BioEnrollPre }},
	ctap.CmdCredentialManagementPre: {handle: (*Authenticator).credentialManagement,
		offered: func(p *persona.Persona) bool { return p.CredMgmtPre }},
}

// command is one entry of the dispatch table.
type command struct {
	// handle runs the command. r.params is the CBOR after the command byte. It returns the value
	// to encode as the response map (nil for an empty response) or an error carrying a Status.
	handle  func(a *Authenticator, ctx context.Context, r *request) (any, error)
	offered func(p *persona.Persona) bool
}

// request is one CTAP2 command in flight.
type request struct {
	cmd       ctap.Command
	params    []byte
	setStatus func(byte)
}

func (r *request) waitingForUser(on bool) {
	if r.setStatus == nil {
		return
	}
	if on {
		r.setStatus(ctaphid.StatusUPNeeded)
	} else {
		r.setStatus(ctaphid.StatusProcessing)
	}
}

// HandleCBOR implements ctaphid.Handler.
func (a *Authenticator) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	var start time.Time
	if a.observe != nil { // reading the clock costs ~0.1 µs: only when someone is told the time
		start = a.clock.Now()
	}
	if len(req) == 0 {
		return []byte{byte(ctap.ErrInvalidLength)}
	}
	cmd := ctap.Command(req[0])
	resp, err := a.dispatch(ctx, &request{cmd: cmd, params: req[1:], setStatus: setStatus})
	st := ctap.StatusOf(err)
	out := resp
	if err != nil {
		out = []byte{byte(st)}
	}
	if a.log.Enabled(ctx, slog.LevelDebug) { // building the attributes allocates: only when shown
		if err != nil {
			a.log.Debug("ctap2", "cmd", cmd.String(), "status", st.String(), "err", err.Error())
		} else {
			a.log.Debug("ctap2", "cmd", cmd.String(), "status", "CTAP2_OK")
		}
	}
	if a.observe != nil {
		a.observe.Exchange(cmd, req, out, st, a.clock.Now().Sub(start))
	}
	return out
}

func (a *Authenticator) dispatch(ctx context.Context, r *request) ([]byte, error) {
	if !a.p.CTAP2 {
		return nil, ctap.Errorf(ctap.ErrInvalidCommand, "persona %s has no CTAP2", a.p.Name)
	}
	c, ok := commands[r.cmd]
	if !ok || (c.offered != nil && !c.offered(a.p)) {
		return nil, ctap.Errorf(ctap.ErrInvalidCommand, "%v not supported by persona %s", r.cmd, a.p.Name)
	}
	if n := 1 + len(r.params); n > a.p.MaxMsgSize {
		// getInfo's maxMsgSize is a promise about what the key can buffer; CTAPHID carries more.
		return nil, ctap.Errorf(ctap.ErrRequestTooLarge, "%d-byte request exceeds maxMsgSize %d", n, a.p.MaxMsgSize)
	}
	if r.cmd != ctap.CmdGetNextAssertion {
		a.mu.Lock()
		a.next = nil // any other command ends a getNextAssertion sequence
		a.mu.Unlock()
	}
	v, err := c.handle(a, ctx, r)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return []byte{byte(ctap.StatusOK)}, nil
	}
	out, err := ctap.MarshalResponse(v)
	if err != nil {
		return nil, ctap.Errorf(ctap.ErrOther, "encoding %v response: %v", r.cmd, err)
	}
	return out, nil
}

// askUser puts a question to the simulated user and turns the answer into the status a real key
// returns: a refusal is CTAP2_ERR_OPERATION_DENIED, no reaction CTAP2_ERR_USER_ACTION_TIMEOUT,
// and CTAPHID_CANCEL while waiting CTAP2_ERR_KEEPALIVE_CANCEL.
func (a *Authenticator) askUser(ctx context.Context, r *request, kind user.Kind, rpID string) error {
	r.waitingForUser(true)
	defer r.waitingForUser(false)
	ans, err := a.user.Ask(ctx, user.Request{Kind: kind, Command: r.cmd.String(), RPID: rpID, Clock: a.clock})
	if err != nil || ctx.Err() != nil {
		return ctap.Errorf(ctap.ErrKeepaliveCancel, "cancelled while waiting for the user")
	}
	switch ans {
	case user.Yes:
		return nil
	case user.No:
		if kind == user.Verification {
			return ctap.Errorf(ctap.ErrUVInvalid, "fingerprint did not match")
		}
		return ctap.Errorf(ctap.ErrOperationDenied, "user refused")
	default:
		return ctap.Errorf(ctap.ErrUserActionTimeout, "user did not react")
	}
}

// resetWindow is how long after power-up authenticatorReset is allowed (CTAP 2.1 §6.6).
func (a *Authenticator) resetWindow() time.Duration {
	if s := a.p.Quirks.ResetWindowSeconds; s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}
