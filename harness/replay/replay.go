// Package replay sends the host side of a trace to a key and compares the answers with the ones
// the recorded key gave — structurally: the same status, the same members, signatures and
// attestations verified rather than compared, counters checked to rise, credential IDs mapped
// from the recorded key's to the new key's — and, the other way round, serves a key that answers
// as the recorded key did (AsKey). docs/traces.md ("Replaying a trace") describes both.
//
// What depends on the recorded key's ephemeral state cannot be sent again as it was: a clientPIN
// exchange was encrypted for that key's key-agreement key, a pinUvAuthParam made with its token,
// an allowList names its credentials. The replay plays the host's part again against the new key
// — its own key agreement, the PIN from the caller, its own token and hmac-secret salt, the new
// key's credential IDs — and says, step by step, what it re-derived. A step that cannot be
// re-derived (no PIN, a token the trace never obtained) is reported as not replayable, with why.
package replay

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/trace"
)

// Keys gives the key each group of a plan is replayed against.
type Keys interface {
	// Open returns the key for the group labelled label.
	Open(ctx context.Context, label string) (keyconn.Key, error)
	// Fresh is true when every Open returns a new emulated key: the replay then sets it up to the
	// recorded key's starting state, chooses its PIN, and may send wrong PINs.
	Fresh() bool
}

// Options tune Run.
type Options struct {
	// PIN is the key's PIN (a real or served key), or the PIN the set-up gives a fresh key.
	PIN string
	// NewPIN is what a recorded changePIN changes the PIN to.
	NewPIN string
	// Destructive allows, on a key that is not a fresh emulated one, what may cost its owner
	// something: setting or changing its PIN, wrong PINs (each uses up a retry), reset, and the
	// set-up (Setup).
	Destructive bool
	// Setup brings a key that is not fresh to the recorded starting state (needs Destructive).
	Setup bool
	// StepTimeout bounds each step (a real key waiting for a touch); 0 means 30 s.
	StepTimeout time.Duration
	// WrapConn wraps every host connection (a trace of the replay).
	WrapConn func(label string, c ctaphid.ReportConn) ctaphid.ReportConn
	// OnStep is called after each step (progress); OnTouch when a key waits for a touch.
	OnStep  func(*StepResult)
	OnTouch func()
	// Replug replugs a key that cannot replug itself (a person at the terminal, for a real key);
	// nil leaves a recorded replug not replayable on such a key.
	Replug func(ctx context.Context) error
}

// DefaultPIN is the PIN the set-up gives a fresh key when no --pin is given.
const DefaultPIN = "246810"

// Verdicts of a step.
const (
	Same          = "same"
	Different     = "different"
	NotReplayable = "not replayable"
	Failed        = "error" // the step could not be sent (the key went away)
)

// StepResult is what replaying one step found.
type StepResult struct {
	Index   int    `json:"index"`
	Group   string `json:"group,omitempty"`
	Src     int    `json:"src"`
	N       int    `json:"n"`
	Line    int    `json:"line"`
	Command string `json:"command"`
	Verdict string `json:"verdict"`
	// Recorded and Replayed are the answers' statuses.
	Recorded string `json:"recorded,omitempty"`
	Replayed string `json:"replayed,omitempty"`
	// Derived lists what of the request was re-derived; Reason says why a step was not replayable.
	Derived []string `json:"derived,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Diffs   []Diff   `json:"differences,omitempty"`
	Checks  []string `json:"verified,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// GroupResult is the set-up of one group.
type GroupResult struct {
	Label string   `json:"label,omitempty"`
	Key   string   `json:"key"`
	Fresh bool     `json:"fresh"`
	SetUp []string `json:"setUp,omitempty"`
}

// Result is a whole replay.
type Result struct {
	Groups        []GroupResult `json:"groups"`
	Steps         []*StepResult `json:"steps"`
	Same          int           `json:"same"`
	Different     int           `json:"different"`
	NotReplayable int           `json:"notReplayable"`
	Errors        int           `json:"errors"`
	Rederived     int           `json:"rederived"`
}

// OK reports whether every replayed step answered as recorded.
func (r *Result) OK() bool { return r.Different == 0 && r.Errors == 0 }

// FirstDifference returns the first step that differs, nil when none does.
func (r *Result) FirstDifference() *StepResult {
	for _, s := range r.Steps {
		if s.Verdict == Different || s.Verdict == Failed {
			return s
		}
	}
	return nil
}

// Run replays every group of p against its key.
func Run(ctx context.Context, p *Plan, keys Keys, o Options) (*Result, error) {
	if o.StepTimeout <= 0 {
		o.StepTimeout = 30 * time.Second
	}
	if o.Setup && !keys.Fresh() && !o.Destructive {
		return nil, errors.New("set-up on a key that is not a fresh emulated one makes credentials and may set its PIN: it needs --destructive")
	}
	res := &Result{}
	for _, g := range p.Groups {
		if err := runGroup(ctx, g, keys, o, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// groupRun is the replay of one group: the key, its connections (one per recorded source) and
// the host's state.
type groupRun struct {
	key   keyconn.Key
	o     Options
	sess  *session
	label string
	conns map[int]*ctaphid.Client
	raw   []ctaphid.ReportConn
}

func runGroup(ctx context.Context, g *Group, keys Keys, o Options, res *Result) error {
	key, err := keys.Open(ctx, g.Label)
	if err != nil {
		return fmt.Errorf("key for %s: %w", nonEmpty(g.Label, "the trace"), err)
	}
	fresh := keys.Fresh()
	if fresh {
		defer key.Close()
	}
	gr := &groupRun{key: key, o: o, sess: newSession(), label: g.Label, conns: map[int]*ctaphid.Client{}}
	defer gr.close()
	gr.sess.wrongOK = fresh || o.Destructive
	gr.sess.pinWrites = fresh || o.Destructive
	gr.sess.setPINTo = nonEmpty(o.PIN, DefaultPIN)
	gr.sess.newPIN = o.NewPIN
	if gr.sess.newPIN == "" && fresh {
		gr.sess.newPIN = DefaultPIN + "0"
	}
	if !fresh {
		gr.sess.pin = o.PIN
	}
	info := GroupResult{Label: g.Label, Key: key.Describe(), Fresh: fresh}
	if fresh || o.Setup {
		c, conn, err := gr.client(ctx)
		if err != nil {
			return err
		}
		lines, err := gr.sess.setUp(ctx, c, g.Preconditions(), gr.sess.setPINTo)
		_ = conn.Close()
		if err != nil {
			return err
		}
		info.SetUp = lines
	}
	res.Groups = append(res.Groups, info)
	for _, st := range g.Steps {
		if c, ok := key.(keyconn.Clocked); ok && st.Gap > 0 {
			c.Advance(st.Gap)
		}
		sr := gr.step(ctx, st)
		sr.Group = g.Label
		res.Steps = append(res.Steps, sr)
		switch sr.Verdict {
		case Same:
			res.Same++
		case Different:
			res.Different++
		case NotReplayable:
			res.NotReplayable++
		default:
			res.Errors++
		}
		if len(sr.Derived) > 0 {
			res.Rederived++
		}
		if o.OnStep != nil {
			o.OnStep(sr)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// client opens a set-up connection.
func (gr *groupRun) client(ctx context.Context) (*client.Client, ctaphid.ReportConn, error) {
	conn, err := gr.key.Conn(ctx)
	if err != nil {
		return nil, nil, err
	}
	hid := ctaphid.NewClient(conn, ctaphid.WithKeepalive(gr.keepalive))
	if _, err := hid.Init(ctx); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("%s: CTAPHID_INIT: %w", gr.key.Describe(), err)
	}
	return client.New(hid), conn, nil
}

func (gr *groupRun) keepalive(status byte) {
	if status == ctaphid.StatusUPNeeded && gr.o.OnTouch != nil {
		gr.o.OnTouch()
	}
}

// hid returns the connection standing in for recorded source src.
func (gr *groupRun) hid(ctx context.Context, src int) (*ctaphid.Client, error) {
	if c, ok := gr.conns[src]; ok {
		return c, nil
	}
	conn, err := gr.key.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if gr.o.WrapConn != nil {
		conn = gr.o.WrapConn(gr.label, conn)
	}
	gr.raw = append(gr.raw, conn)
	c := ctaphid.NewClient(conn, ctaphid.WithKeepalive(gr.keepalive))
	gr.conns[src] = c
	return c, nil
}

func (gr *groupRun) close() {
	for _, c := range gr.raw {
		_ = c.Close()
	}
}

// step replays one step.
func (gr *groupRun) step(ctx context.Context, st *Step) *StepResult {
	sr := &StepResult{Index: st.Index, Src: st.Src, N: st.N, Line: st.Line, Command: st.Name()}
	if st.Response != nil {
		sr.Recorded = statusName(st)
	}
	if st.Replug {
		gr.replug(ctx, st, sr)
		return sr
	}
	ctx, cancel := context.WithTimeout(ctx, gr.o.StepTimeout)
	defer cancel()
	hid, err := gr.hid(ctx, st.Src)
	if err != nil {
		sr.Verdict, sr.Reason = Failed, "opening a connection: "+err.Error()
		return sr
	}
	extra := func(ctx context.Context, v int) (cose.Key, error) { return extraKeyAgreement(ctx, hid, v) }
	p, err := gr.sess.prepare(ctx, st, extra)
	if err != nil {
		sr.Verdict, sr.Reason = Failed, err.Error()
		return sr
	}
	sr.Derived, sr.Notes = p.derived, p.notes
	if p.skip != "" {
		sr.Verdict, sr.Reason = NotReplayable, p.skip
		return sr
	}
	if st.Response == nil {
		sr.Verdict, sr.Reason = NotReplayable, "the recorded key never answered it ("+nonEmpty(st.Error, "no answer")+"): there is nothing to compare with"
		return sr
	}
	o := gr.send(ctx, hid, st, p, sr)
	if sr.Verdict != "" {
		return sr
	}
	for i := range o.diffs {
		if f := o.diffs[i].Field; st.HID == ctaphid.CmdCBOR && f != "" && f[0] >= '0' && f[0] <= '9' {
			o.diffs[i].Field = trace.MemberName(st.Cmd, true, strings.Split(f, "."))
		}
	}
	sr.Diffs, sr.Checks = o.diffs, o.checks
	sr.Notes = append(sr.Notes, o.notes...)
	sr.Verdict = Same
	if len(o.diffs) > 0 {
		sr.Verdict = Different
	}
	return sr
}

// replug power-cycles the key where the recorded key was: every connection ends, and the key
// forgets its key agreement and tokens.
func (gr *groupRun) replug(ctx context.Context, st *Step, sr *StepResult) {
	var err error
	switch r, ok := gr.key.(keyconn.Replugger); {
	case ok && keyconn.CanReplug(gr.key):
		gr.close()
		err = r.Replug(ctx)
	case gr.o.Replug != nil:
		gr.close()
		err = gr.o.Replug(ctx)
	default:
		sr.Verdict, sr.Reason = NotReplayable, "the recorded key was unplugged and plugged in again here, and this key cannot be replugged without a person"
		return
	}
	if err != nil {
		sr.Verdict, sr.Reason = Failed, "replug: "+err.Error()
		return
	}
	gr.conns, gr.raw = map[int]*ctaphid.Client{}, nil
	clear(gr.sess.ka)
	gr.sess.tok, gr.sess.tokWhy = nil, fmt.Sprintf("the key was replugged at step #%d, which ends every token", st.Index)
	sr.Verdict = Same
}

// send sends a prepared step and compares the answer.
func (gr *groupRun) send(ctx context.Context, hid *ctaphid.Client, st *Step, p *prepared, sr *StepResult) *outcome {
	o := &outcome{}
	if st.HID == ctaphid.CmdInit {
		info, err := hid.Init(ctx)
		if err != nil {
			gr.transportAnswer(st, err, sr, o)
			return o
		}
		sr.Replayed = "INIT"
		compareInit(st, info, o)
		return o
	}
	resp, err := hid.Transact(ctx, st.HID, p.req)
	if err != nil {
		gr.transportAnswer(st, err, sr, o)
		return o
	}
	switch st.HID {
	case ctaphid.CmdCBOR:
		if len(resp) > 0 {
			sr.Replayed = ctap.Status(resp[0]).String()
		}
		if st.Response.HID != "CBOR" && st.Response.HID != "-" {
			o.diff("answer", st.Response.HID+" "+st.Response.Status, "CBOR "+sr.Replayed, "")
			return o
		}
		return gr.sess.compareCBOR(st, p, resp)
	case ctaphid.CmdMsg:
		sr.Replayed = "MSG"
		if st.Response.HID != "MSG" {
			o.diff("answer", st.Response.HID+" "+st.Response.Status, "MSG", "")
			return o
		}
		gr.sess.compareU2F(st, p.req, resp, o)
	default:
		sr.Replayed = trace.HIDName(st.HID)
		rec, _ := st.Response.Payload()
		if st.Response.HID != trace.HIDName(st.HID) {
			o.diff("answer", st.Response.HID+" "+st.Response.Status, sr.Replayed, "")
		} else if st.HID == ctaphid.CmdPing && string(rec) != string(resp) {
			o.diff("echo", fmt.Sprintf("%d bytes", len(rec)), fmt.Sprintf("%d bytes", len(resp)), "")
		}
	}
	return o
}

// transportAnswer handles a step answered with CTAPHID_ERROR or not at all.
func (gr *groupRun) transportAnswer(st *Step, err error, sr *StepResult, o *outcome) {
	var he *ctaphid.HIDError
	if errors.As(err, &he) {
		sr.Replayed = "ERROR " + he.Code.String()
		if st.Response.HID != "ERROR" || st.Response.Status != he.Code.String() {
			o.diff("answer", st.Response.HID+" "+st.Response.Status, sr.Replayed, "")
		}
		return
	}
	sr.Verdict, sr.Reason = Failed, err.Error()
	delete(gr.conns, st.Src) // a broken connection is opened anew for the next step
}

// compareInit compares a CTAPHID_INIT answer: the protocol version, the device version and the
// capabilities (the channel and nonce are each run's own).
func compareInit(st *Step, info ctaphid.InitInfo, o *outcome) {
	rec, _ := st.Response.Payload()
	if st.Response.HID != "INIT" || len(rec) < 17 {
		o.diff("answer", st.Response.HID+" "+st.Response.Status, "INIT", "")
		return
	}
	if rec[12] != info.ProtocolVersion {
		o.diff("CTAPHID protocol version", fmt.Sprint(rec[12]), fmt.Sprint(info.ProtocolVersion), "")
	}
	if rv, gv := fmt.Sprintf("%d.%d.%d", rec[13], rec[14], rec[15]), fmt.Sprintf("%d.%d.%d", info.Major, info.Minor, info.Build); rv != gv {
		o.diff("device version", rv, gv, "the firmware's version")
	}
	if rec[16] != info.Capabilities {
		o.diff("capabilities", fmt.Sprintf("0x%02x", rec[16]), fmt.Sprintf("0x%02x", info.Capabilities), "WINK 0x01, CBOR 0x04, NMSG 0x08")
	}
}

// extraKeyAgreement fetches the key's key-agreement key outside the recorded steps.
func extraKeyAgreement(ctx context.Context, hid *ctaphid.Client, v int) (cose.Key, error) {
	req, err := ctap.Marshal(&ctap.ClientPINRequest{PinUvAuthProtocol: ctap.Uint(uint64(v)), SubCommand: ctap.Uint(ctap.PINGetKeyAgreement)})
	if err != nil {
		return cose.Key{}, err
	}
	resp, err := hid.CBOR(ctx, append([]byte{byte(ctap.CmdClientPIN)}, req...))
	if err != nil {
		return cose.Key{}, err
	}
	if len(resp) == 0 || resp[0] != byte(ctap.StatusOK) {
		return cose.Key{}, fmt.Errorf("getKeyAgreement answered %s", statusOf(resp))
	}
	var r ctap.ClientPINResponse
	if err := ctap.DecMode().Unmarshal(resp[1:], &r); err != nil {
		return cose.Key{}, err
	}
	return cose.Unmarshal(r.KeyAgreement)
}

func statusOf(resp []byte) string {
	if len(resp) == 0 {
		return "nothing"
	}
	return ctap.Status(resp[0]).String()
}
