package emulator

import (
	"context"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator"
	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/ctap"
)

// Faults make the key misbehave on purpose, to see how a host copes. The zero value injects nothing.
type Faults struct {
	mu       sync.Mutex
	failNext []ctap.Status
	delay    time.Duration
	silent   int
	injected int
}

// FaultState is a snapshot of the configured faults.
type FaultState struct {
	FailNext []string `json:"failNext"`
	DelayMs  int64    `json:"delayMs"`
	Silent   int      `json:"silent"`
	Injected int      `json:"injected"`
}

// FailNext answers the next CBOR requests with these statuses instead of running them.
func (f *Faults) FailNext(s ...ctap.Status) {
	f.mu.Lock()
	f.failNext = append(f.failNext, s...)
	f.mu.Unlock()
}

// SetDelay adds processing time to every CBOR request (keepalives keep flowing meanwhile).
func (f *Faults) SetDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// Silence makes the key never answer the next n CBOR requests (it keeps sending keepalives until
// the host cancels), like a key whose secure element hung.
func (f *Faults) Silence(n int) {
	f.mu.Lock()
	f.silent = n
	f.mu.Unlock()
}

// Clear removes every fault.
func (f *Faults) Clear() {
	f.mu.Lock()
	f.failNext, f.delay, f.silent = nil, 0, 0
	f.mu.Unlock()
}

// State returns a snapshot.
func (f *Faults) State() FaultState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := FaultState{DelayMs: f.delay.Milliseconds(), Silent: f.silent, Injected: f.injected}
	for _, s := range f.failNext {
		st.FailNext = append(st.FailNext, s.String())
	}
	return st
}

// next decides what to do with one CBOR request.
func (f *Faults) next() (fail ctap.Status, failing bool, delay time.Duration, silent bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
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

// faultHandler sits between the CTAPHID device and the authenticator.
type faultHandler struct {
	inner *authenticator.Authenticator
	f     *Faults
	clock clock.Clock
}

func (h *faultHandler) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	fail, failing, delay, silent := h.f.next()
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
	return h.inner.HandleCBOR(ctx, req, setStatus)
}

func (h *faultHandler) HandleMSG(ctx context.Context, apdu []byte) []byte {
	return h.inner.HandleMSG(ctx, apdu)
}

func (h *faultHandler) Wink() { h.inner.Wink() }
