package emulator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// Knobs is every run-time knob of a running key, in one struct as Chromium's
// VirtualFidoDevice::State has them: the power, the simulated user, the CTAPHID timers and the
// faults. A persona describes the model of key, and its quirks give some knobs their initial
// values; everything here may change while the key runs, read and written as a whole
// (Key.Knobs, Key.SetKnobs, the control API's /knobs). The JSON form is the control API's.
type Knobs struct {
	// Plugged: the key is in the port. Unplugging drops every channel and request and ignores
	// reports until it is plugged in again, which is a power-up (PIN power-cycle counter cleared,
	// new key-agreement key, the reset window restarts).
	Plugged bool `json:"plugged"`
	// User is the simulated user, in the --user syntax: yes, no, timeout, delay:800ms[:ANSWER],
	// script:A,B,… (then yes), manual. A policy set from Go that has no such form reads as its
	// type name and is kept as long as User is written back unchanged.
	User string `json:"user"`
	// FingerHeld: the finger rests on the key. In manual mode every question is then answered at
	// once; with it lifted, questions wait for a touch.
	FingerHeld bool `json:"fingerHeld"`
	// ProcessingDelayMs is added to every CBOR request, on the key's clock, before it runs: a slow
	// secure element. Keepalives keep flowing meanwhile. The persona's processingDelayMs quirk is
	// its initial value.
	ProcessingDelayMs int `json:"processingDelayMs"`
	// Keepalive: CTAPHID_KEEPALIVE every KeepaliveIntervalMs while a CBOR request runs. The
	// persona's noKeepalive quirk turns it off initially (Windows gives up on such a key after
	// about half a second).
	Keepalive           bool `json:"keepalive"`
	KeepaliveIntervalMs int  `json:"keepaliveIntervalMs"`
	// MessageTimeoutMs is how long a CTAPHID message may take from its first packet to its
	// last before CTAPHID_ERROR ERR_MSG_TIMEOUT: one deadline per message, not per packet.
	MessageTimeoutMs int `json:"messageTimeoutMs"`
	// FailNext answers the next CBOR requests with these statuses, one each, instead of running
	// them. Statuses by name (CTAP2_ERR_PIN_INVALID, ERR_PIN_INVALID) or number (0x31); they
	// read back by name.
	FailNext []string `json:"failNext"`
	// Silent is how many of the next CBOR requests are never answered: the key keeps sending
	// keepalives until the host cancels, like a key whose secure element hung.
	Silent int `json:"silent"`
	// BadSignatureWithHMACSecret corrupts the signature of every getAssertion answer whose
	// request asked for the hmac-secret extension (one bit of the DER signature flipped), the
	// defect that broke Windows sign-in on Solo keys (solokeys/solo1 #228). Answers without
	// hmac-secret stay intact.
	BadSignatureWithHMACSecret bool `json:"badSignatureWithHmacSecret"`
}

// Limits on the knobs that take a number.
const (
	maxDelayMs   = 600_000 // ten minutes
	maxTimerMs   = 60_000
	minTimerMs   = 1
	maxFailNext  = 1024
	maxSilentReq = 1 << 20
)

// faults is the part of the knobs the key keeps itself; the others live in the objects they
// drive (the device's power and timing, the user switch). Guarded by Key.fmu.
type faults struct {
	delay    time.Duration
	failNext []ctap.Status
	silent   int
	badSig   bool // BadSignatureWithHMACSecret
	injected int  // how many requests a fault was applied to, for the status
}

// knobSettings is Knobs checked and parsed, ready to apply.
type knobSettings struct {
	Knobs
	policy   user.Policy // nil: keep the current one
	manual   bool
	failNext []ctap.Status
	timing   ctaphid.Timing
}

// check validates every knob before any is applied, so a bad value changes nothing.
func (k *Key) check(n Knobs) (*knobSettings, error) {
	s := &knobSettings{Knobs: n}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if cur := k.userKnob(); n.User != cur {
		p, err := user.ParsePolicy(n.User)
		switch {
		case err != nil:
			bad("user: %v", err)
		default:
			if _, manual := p.(*user.Switch); manual {
				s.manual = true
			} else {
				s.policy = p
			}
		}
	}
	if n.ProcessingDelayMs < 0 || n.ProcessingDelayMs > maxDelayMs {
		bad("processingDelayMs %d outside 0..%d", n.ProcessingDelayMs, maxDelayMs)
	}
	for name, v := range map[string]int{"keepaliveIntervalMs": n.KeepaliveIntervalMs, "messageTimeoutMs": n.MessageTimeoutMs} {
		if v < minTimerMs || v > maxTimerMs {
			bad("%s %d outside %d..%d", name, v, minTimerMs, maxTimerMs)
		}
	}
	if len(n.FailNext) > maxFailNext {
		bad("failNext: %d statuses, at most %d", len(n.FailNext), maxFailNext)
	}
	for _, name := range n.FailNext {
		st, err := ctap.ParseStatus(name)
		if err != nil {
			bad("failNext: %v", err)
			continue
		}
		s.failNext = append(s.failNext, st)
	}
	if n.Silent < 0 || n.Silent > maxSilentReq {
		bad("silent %d outside 0..%d", n.Silent, maxSilentReq)
	}
	s.timing = ctaphid.Timing{
		MessageTimeout:    time.Duration(n.MessageTimeoutMs) * time.Millisecond,
		KeepaliveInterval: time.Duration(n.KeepaliveIntervalMs) * time.Millisecond,
		NoKeepalive:       !n.Keepalive,
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// Knobs returns the key's knobs now.
func (k *Key) Knobs() Knobs {
	p, manual, held := k.User.Current()
	t := k.Device.Timing()
	n := Knobs{
		Plugged:             k.Device.Powered(),
		User:                userString(p, manual),
		FingerHeld:          held,
		Keepalive:           !t.NoKeepalive,
		KeepaliveIntervalMs: int(t.KeepaliveInterval / time.Millisecond),
		MessageTimeoutMs:    int(t.MessageTimeout / time.Millisecond),
		FailNext:            []string{},
	}
	k.fmu.Lock()
	defer k.fmu.Unlock()
	n.ProcessingDelayMs = int(k.faults.delay / time.Millisecond)
	n.Silent = k.faults.silent
	n.BadSignatureWithHMACSecret = k.faults.badSig
	for _, s := range k.faults.failNext {
		n.FailNext = append(n.FailNext, s.String())
	}
	return n
}

// SetKnobs sets every knob to n. Nothing changes when a knob is invalid. A request already
// running keeps the timing and delay it started with; the user and the power act at once (an
// unplug cancels the request, a finger put on the key answers the question waiting for it).
func (k *Key) SetKnobs(n Knobs) error {
	k.set.Lock()
	defer k.set.Unlock()
	return k.setKnobs(n)
}

// UpdateKnobs changes some knobs: change gets the current ones and edits them, and the result
// is set as by SetKnobs, with no other update in between; when change returns an error nothing
// is set. It returns the knobs now in effect.
func (k *Key) UpdateKnobs(change func(*Knobs) error) (Knobs, error) {
	k.set.Lock()
	defer k.set.Unlock()
	n := k.Knobs()
	if err := change(&n); err != nil {
		return k.Knobs(), err
	}
	if err := k.setKnobs(n); err != nil {
		return k.Knobs(), err
	}
	return k.Knobs(), nil
}

// ResetFaults puts the fault knobs (failNext, silent, the processing delay) back to the values
// the key started with.
func (k *Key) ResetFaults() Knobs {
	n, _ := k.UpdateKnobs(func(n *Knobs) error {
		n.FailNext, n.Silent, n.ProcessingDelayMs, n.BadSignatureWithHMACSecret = nil, 0, k.initial.ProcessingDelayMs, false
		return nil
	})
	return n
}

// setKnobs is SetKnobs with k.set held.
func (k *Key) setKnobs(n Knobs) error {
	s, err := k.check(n)
	if err != nil {
		return fmt.Errorf("knobs: %w", err)
	}
	switch {
	case s.manual:
		k.User.SetManual(true)
	case s.policy != nil:
		k.User.Set(s.policy)
	}
	k.User.SetHeld(n.FingerHeld)
	k.Device.SetTiming(s.timing)
	k.fmu.Lock()
	k.faults.delay = time.Duration(n.ProcessingDelayMs) * time.Millisecond
	k.faults.failNext = s.failNext
	k.faults.silent = n.Silent
	k.faults.badSig = n.BadSignatureWithHMACSecret
	k.fmu.Unlock()
	return k.setPlugged(n.Plugged)
}

// userKnob is the User knob now.
func (k *Key) userKnob() string {
	p, manual, _ := k.User.Current()
	return userString(p, manual)
}

func userString(p user.Policy, manual bool) string {
	if manual {
		return "manual"
	}
	return user.Describe(p)
}

// nextFault decides what to do with one CBOR request.
func (k *Key) nextFault() (fail ctap.Status, failing bool, delay time.Duration, silent bool) {
	k.fmu.Lock()
	defer k.fmu.Unlock()
	f := &k.faults
	delay = f.delay
	switch {
	case f.silent > 0:
		f.silent--
		f.injected++
		return 0, false, delay, true
	case len(f.failNext) > 0:
		fail, f.failNext = f.failNext[0], f.failNext[1:]
		f.injected++
		return fail, true, delay, false
	}
	return 0, false, delay, false
}

// knobHandler sits between the CTAPHID device and the authenticator and applies the knobs that
// act on requests: the processing delay and the faults.
type knobHandler struct {
	inner ctaphid.Handler
	k     *Key
	clock clock.Clock
}

func (h *knobHandler) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	fail, failing, delay, silent := h.k.nextFault()
	if delay > 0 && h.clock.Sleep(ctx, delay) != nil {
		return []byte{byte(ctap.ErrKeepaliveCancel)}
	}
	if silent {
		<-ctx.Done()
		return []byte{byte(ctap.ErrKeepaliveCancel)}
	}
	if failing {
		return []byte{byte(fail)}
	}
	resp := h.inner.HandleCBOR(ctx, req, setStatus)
	if h.k.badSignatureFault() {
		if bad, ok := corruptHMACSecretSignature(req, resp); ok {
			h.k.fmu.Lock()
			h.k.faults.injected++
			h.k.fmu.Unlock()
			return bad
		}
	}
	return resp
}

func (k *Key) badSignatureFault() bool {
	k.fmu.Lock()
	defer k.fmu.Unlock()
	return k.faults.badSig
}

// corruptHMACSecretSignature flips the last bit of the signature of a successful getAssertion
// answer whose request asked for hmac-secret; ok is false when req and resp are not such a pair.
func corruptHMACSecretSignature(req, resp []byte) ([]byte, bool) {
	if len(req) < 2 || ctap.Command(req[0]) != ctap.CmdGetAssertion || len(resp) < 2 || ctap.Status(resp[0]) != ctap.StatusOK {
		return nil, false
	}
	ga, err := ctap.DecodeGetAssertion(req[1:])
	if err != nil || ga.Extensions == nil || ga.Extensions.HMACSecret == nil {
		return nil, false
	}
	var r ctap.GetAssertionResponse
	if err := ctap.Unmarshal(resp[1:], &r); err != nil || len(r.Signature) == 0 {
		return nil, false
	}
	r.Signature = append([]byte(nil), r.Signature...)
	r.Signature[len(r.Signature)-1] ^= 1
	b, err := ctap.Marshal(&r)
	if err != nil {
		return nil, false
	}
	return append([]byte{byte(ctap.StatusOK)}, b...), true
}

func (h *knobHandler) HandleMSG(ctx context.Context, apdu []byte) []byte {
	return h.inner.HandleMSG(ctx, apdu)
}

func (h *knobHandler) Wink() { h.inner.Wink() }
