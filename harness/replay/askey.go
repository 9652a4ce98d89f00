package replay

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/ctap/u2f"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyprofile"
)

// AsKey is a key that answers as a recorded key did, so that a host's failure can be reproduced
// against the exact answers it got. It is an emulated key of a persona derived from the trace
// (the recorded getInfo's model, AAGUID, attestation, quirks the traffic shows), brought to the
// recorded starting state (its PIN, the discoverable credentials the recorded key answered with,
// made in the order that returns them as recorded), and in front of it a layer that answers with
// the recorded answer wherever that is still valid:
//
//   - every error the recorded key gave, to the same request (same command, subcommand, relying
//     party, options and extensions), the n-th time it is asked as the recorded key was asked the
//     n-th time: the key's error quirks, its wrong-PIN and no-credentials answers;
//   - getInfo, getPINRetries, getUVRetries and large-blob reads, verbatim (the last recorded
//     answer once the host asks more often than it did).
//
// Every other successful answer — key agreement, tokens, credentials, signatures over new
// challenges — the emulated key gives: a recorded answer made for another key agreement or
// challenge would be a wrong answer, and one that made a credential would leave the emulated
// key without it.
type AsKey struct {
	// Persona is the key's model, derived from the trace; Guesses what it had to guess.
	Persona *persona.Persona
	Guesses []keyprofile.Guess
	// Pre is the recorded key's starting state.
	Pre Precondition

	o       AsKeyOptions
	answers map[string][]*Step // request shape → the recorded steps of that shape, in order
	mu      sync.Mutex
	asked   map[string]int
	// preparing lets the set-up's own requests through to the emulated key, uncounted.
	preparing bool
}

// AsKeyOptions tune NewAsKey.
type AsKeyOptions struct {
	// Source names the trace in the persona's description.
	Source string
	// Timing makes recorded answers take the time they took, with the recorded keepalives.
	Timing bool
	// Log, when set, is told how each request was answered.
	Log func(string)
}

// NewAsKey prepares a key answering as the recorded key of plan p did. A plan of several runner
// cases must be narrowed to one (Plan.Select) first: each case had a key of its own.
func NewAsKey(p *Plan, o AsKeyOptions) (*AsKey, error) {
	if len(p.Groups) != 1 {
		var labels []string
		for _, g := range p.Groups {
			labels = append(labels, g.Label)
		}
		return nil, fmt.Errorf("the trace holds %d keys' traffic (one per case): choose one with --case (%s)", len(p.Groups), strings.Join(labels, ", "))
	}
	pr := p.Profile(o.Source)
	if pr.Info == nil && !pr.U2F {
		return nil, fmt.Errorf("the trace has no getInfo answer and no U2F traffic: there is nothing to tell what key it was")
	}
	a := &AsKey{o: o, answers: map[string][]*Step{}, asked: map[string]int{}, Pre: p.Groups[0].Preconditions()}
	a.Persona, a.Guesses = pr.Persona()
	for _, st := range p.Groups[0].Steps {
		if st.Response == nil || st.Replug || (st.HID != ctaphid.CmdCBOR && st.HID != ctaphid.CmdMsg) || len(st.Request) == 0 {
			continue
		}
		k := shape(st.HID, st.Request)
		a.answers[k] = append(a.answers[k], st)
	}
	return a, nil
}

// shape is what makes two requests "the same request" for the recorded answers: the command and
// what the host asked for, not the values that change every time (challenges, key agreements,
// pinUvAuthParams, credential IDs).
func shape(hid byte, req []byte) string {
	if hid == ctaphid.CmdMsg {
		c, err := u2f.ParseAPDU(req)
		if err != nil {
			return "u2f/?"
		}
		s := fmt.Sprintf("u2f/%02x/%02x", c.INS, c.P1)
		if len(c.Data) >= 64 {
			s += fmt.Sprintf("/%x", c.Data[32:64]) // the application parameter
		}
		return s
	}
	cmd := ctap.Command(req[0])
	parts := []string{cmd.String()}
	if sub := subCommandName(cmd, req); sub != "" {
		parts = append(parts, sub)
	}
	m := mustMap(req)
	switch cmd {
	case ctap.CmdClientPIN:
		if v, ok := getUint(m, 9); ok {
			parts = append(parts, fmt.Sprintf("permissions %d", v))
		}
		parts = append(parts, getString(m, 10))
	case ctap.CmdMakeCredential:
		parts = append(parts, getString(getMap(m, 2), "id"), optionsOf(getMap(m, 7)), extNames(getMap(m, 6)),
			fmt.Sprintf("exclude %d", listLen(m, 5)))
	case ctap.CmdGetAssertion:
		parts = append(parts, getString(m, 1), optionsOf(getMap(m, 5)), extNames(getMap(m, 4)),
			fmt.Sprintf("allow %d", listLen(m, 3)))
	case ctap.CmdLargeBlobs:
		if _, ok := get(m, 1); ok {
			parts = append(parts, "get")
		} else {
			parts = append(parts, "set")
		}
	}
	return strings.Join(parts, "/")
}

func listLen(m map[any]any, k int) int {
	v, _ := get(m, k)
	l, _ := v.([]any)
	return len(l)
}

func optionsOf(m map[any]any) string {
	var o []string
	for _, k := range sortedKeys(m) {
		o = append(o, fmt.Sprintf("%s=%v", keyName(k), m[k]))
	}
	return strings.Join(o, ",")
}

func extNames(m map[any]any) string {
	var o []string
	for _, k := range sortedKeys(m) {
		o = append(o, keyName(k))
	}
	sort.Strings(o)
	return strings.Join(o, ",")
}

// verbatim says whether a successful recorded answer of this kind stays valid for any request of
// its shape: it depends on nothing the request carries.
func verbatim(cmd ctap.Command, sub string, req []byte) bool {
	switch cmd {
	case ctap.CmdGetInfo:
		return true
	case ctap.CmdClientPIN:
		return sub == "getPINRetries" || sub == "getUVRetries"
	case ctap.CmdLargeBlobs:
		_, ok := get(mustMap(req), 1)
		return ok
	}
	return false
}

// Prepare brings the emulated key (reached through c) to the recorded starting state: the
// discoverable credentials the recorded key answered with, then its PIN. It returns what it did.
func (a *AsKey) Prepare(ctx context.Context, c *client.Client, pin string) ([]string, error) {
	a.mu.Lock()
	a.preparing = true
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.preparing = false
		a.mu.Unlock()
	}()
	s := newSession()
	return s.setUp(ctx, c, a.Pre, pin)
}

// Intercept is the layer in front of the emulated key (emulator.Options.Intercept); clk is the
// key's clock, on which recorded answers take their recorded time when AsKeyOptions.Timing is set.
func (a *AsKey) Intercept(clk clock.Clock) func(ctaphid.Handler) ctaphid.Handler {
	return func(inner ctaphid.Handler) ctaphid.Handler {
		return &asKeyHandler{a: a, inner: inner, clock: clock.Or(clk)}
	}
}

type asKeyHandler struct {
	a     *AsKey
	inner ctaphid.Handler
	clock clock.Clock
}

func (h *asKeyHandler) HandleCBOR(ctx context.Context, req []byte, setStatus func(byte)) []byte {
	if len(req) == 0 {
		return h.inner.HandleCBOR(ctx, req, setStatus)
	}
	st, why := h.a.recorded(ctaphid.CmdCBOR, req)
	if why == "set-up" {
		return h.inner.HandleCBOR(ctx, req, setStatus)
	}
	if st == nil {
		h.a.logf("%s → emulated (%s)", describeReq(ctaphid.CmdCBOR, req), why)
		return h.inner.HandleCBOR(ctx, req, setStatus)
	}
	h.a.logf("%s → recorded %s (trace line %d, %s)", describeReq(ctaphid.CmdCBOR, req), statusName(st), st.Line, why)
	if err := h.wait(ctx, st, setStatus); err != nil {
		return []byte{byte(ctap.ErrKeepaliveCancel)}
	}
	b, _ := st.Response.Payload()
	return append([]byte(nil), b...)
}

func (h *asKeyHandler) HandleMSG(ctx context.Context, apdu []byte) []byte {
	st, why := h.a.recorded(ctaphid.CmdMsg, apdu)
	if why == "set-up" {
		return h.inner.HandleMSG(ctx, apdu)
	}
	if st == nil || st.Response.HID != "MSG" {
		h.a.logf("%s → emulated (%s)", describeReq(ctaphid.CmdMsg, apdu), why)
		return h.inner.HandleMSG(ctx, apdu)
	}
	h.a.logf("%s → recorded %s (trace line %d, %s)", describeReq(ctaphid.CmdMsg, apdu), statusName(st), st.Line, why)
	if err := h.wait(ctx, st, nil); err != nil {
		return h.inner.HandleMSG(ctx, apdu)
	}
	b, _ := st.Response.Payload()
	return append([]byte(nil), b...)
}

func (h *asKeyHandler) Wink() { h.inner.Wink() }

// wait takes the recorded time to answer, showing the recorded keepalive status meanwhile.
func (h *asKeyHandler) wait(ctx context.Context, st *Step, setStatus func(byte)) error {
	if !h.a.o.Timing {
		return nil
	}
	if setStatus != nil && st.KeepaliveStatus == "UPNEEDED" {
		setStatus(ctaphid.StatusUPNeeded)
	}
	if d := stepDuration(st); d > 0 {
		return h.clock.Sleep(ctx, min(d, 10*time.Minute))
	}
	return nil
}

// recorded returns the recorded answer to give to req, or nil and why the emulated key answers.
func (a *AsKey) recorded(hid byte, req []byte) (*Step, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.preparing {
		return nil, "set-up"
	}
	k := shape(hid, req)
	n := a.asked[k]
	a.asked[k] = n + 1
	seq := a.answers[k]
	switch {
	case hid == ctaphid.CmdMsg:
		if n < len(seq) && !strings.HasPrefix(seq[n].Response.Status, "SW_NO_ERROR") {
			return seq[n], fmt.Sprintf("the recorded key's answer the %s time", ordinal(n+1))
		}
	case len(seq) > 0 && verbatim(ctap.Command(req[0]), subCommandName(ctap.Command(req[0]), req), req):
		return seq[min(n, len(seq)-1)], "its answer depends on nothing the request carries"
	case n < len(seq) && recordedStatus(seq[n]) != ctap.StatusOK:
		return seq[n], fmt.Sprintf("the recorded key's error the %s time", ordinal(n+1))
	}
	switch {
	case len(seq) == 0:
		return nil, "the recorded host never asked this"
	case n >= len(seq):
		return nil, fmt.Sprintf("asked %s time; the recorded host asked %d", ordinal(n+1), len(seq))
	case hid == ctaphid.CmdMsg:
		return nil, "the recorded answer was a signature over another challenge"
	}
	return nil, "the recorded answer was made for another key agreement, token or challenge"
}

func (a *AsKey) logf(format string, args ...any) {
	if a.o.Log != nil {
		a.o.Log(fmt.Sprintf(format, args...))
	}
}

func describeReq(hid byte, req []byte) string {
	st := &Step{HID: hid, Request: req}
	if hid == ctaphid.CmdCBOR && len(req) > 0 {
		st.Cmd = ctap.Command(req[0])
	}
	s := st.Name()
	if st.Cmd == ctap.CmdGetAssertion || st.Cmd == ctap.CmdMakeCredential {
		m := mustMap(req)
		rp := getString(m, 1)
		if st.Cmd == ctap.CmdMakeCredential {
			rp = getString(getMap(m, 2), "id")
		}
		s += " " + rp
	}
	return s
}

func ordinal(n int) string {
	switch {
	case n%100 >= 11 && n%100 <= 13:
		return fmt.Sprintf("%dth", n)
	case n%10 == 1:
		return fmt.Sprintf("%dst", n)
	case n%10 == 2:
		return fmt.Sprintf("%dnd", n)
	case n%10 == 3:
		return fmt.Sprintf("%drd", n)
	}
	return fmt.Sprintf("%dth", n)
}
