package replay

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
)

// Plan is what a trace asks of a key, in the order it was asked: the host side of every exchange,
// with the answer the recorded key gave, grouped by key lifetime.
type Plan struct {
	Header trace.Header
	// Groups are key lifetimes: a `fidolab run` trace has one per case (each case had a fresh key);
	// any other trace is one group (one key, however many connections and operations).
	Groups []*Group
	// Sources are the trace's source records by number.
	Sources map[int]*trace.Record
	// Events are the trace's event records (an imported event log's device, process and error
	// events).
	Events []*trace.Record
	// Ignored counts exchange records that are not host requests (an answer with no request, a
	// keepalive nobody asked for): nothing to replay.
	Ignored int
}

// Group is the traffic of one key lifetime.
type Group struct {
	// Label is the runner case ("sign-in-lock-screen@11-24H2"), or "" for a trace of one key.
	Label string
	Steps []*Step
	// Marks are the case's labels (fidolab run --trace): what it did, in order.
	Marks []Mark
}

// Mark is a label in a trace: "step 2: reset-key", "key replugged".
type Mark struct {
	// Before is the number of the group's steps that came before it.
	Before int
	Text   string
	T      time.Time
}

// MarkReplug is the mark a runner writes when it replugs a case's key.
const MarkReplug = "key replugged"

// Step is one recorded exchange.
type Step struct {
	// Index counts steps in the plan from 1, across groups: the number the output shows.
	Index int
	// Src and N locate the exchange in the trace (source, exchange number in the source).
	Src, N int
	// Line is the trace line of the exchange record.
	Line int
	T    time.Time
	// HID is the CTAPHID command of the request (CmdCBOR, CmdMsg, …); Unframed marks an exchange
	// imported without framing (an event log), replayed as CTAP2 CBOR.
	HID      byte
	Unframed bool
	// Cmd is the CTAP2 command of a CBOR request (0 otherwise).
	Cmd ctap.Command
	// Request is the recorded request payload; Redacted the spans replaced by zeros.
	Request  []byte
	Redacted []trace.Span
	// Response is the recorded answer (nil when none came).
	Response *trace.Message
	// Cancelled is set when the host cancelled the request; Error is the recorder's note.
	Cancelled bool
	Error     string
	// Keepalives is how many CTAPHID_KEEPALIVE the recorded key sent while it worked on the
	// request, KeepaliveStatus the last one's status.
	Keepalives      int
	KeepaliveStatus string
	// Replug marks a step that is no exchange: the recorded key was unplugged and plugged in
	// again here (a power-up).
	Replug bool
	// Silent is, for a request the key never answered, how long the trace shows it silent after
	// the request: until the source's next record (the host's cancel or giving up, the
	// connection's close). 0 when an answer came or nothing followed.
	Silent time.Duration
	// Gap is the recorded time between the previous step's answer (or request, when it had none)
	// and this request (0 for the first): an emulated key's clock is moved by it, so a reset window
	// or a token's expiry sees the time the recorded key saw.
	Gap time.Duration
}

// Label is how the output names a step: "#12 [src 3 #4] authenticatorGetAssertion".
func (s *Step) Label() string {
	if s.Replug {
		return fmt.Sprintf("#%d %s", s.Index, s.Name())
	}
	return fmt.Sprintf("#%d [src %d #%d] %s", s.Index, s.Src, s.N, s.Name())
}

// Name is the step's command as a person reads it.
func (s *Step) Name() string {
	switch {
	case s.Replug:
		return "replug (power-up)"
	case s.HID == ctaphid.CmdCBOR && len(s.Request) > 0:
		name := ctap.Command(s.Request[0]).String()
		if sub := subCommandName(s.Cmd, s.Request); sub != "" {
			name += " " + sub
		}
		return name
	case s.HID == ctaphid.CmdMsg:
		return "U2F " + u2fName(s.Request)
	}
	return "CTAPHID_" + trace.HIDName(s.HID)
}

// ReadPlan reads a trace into a plan. A trace that is cut short or damaged is an error naming the
// line, as for every reader of traces: a replay of half a trace would compare the wrong answers.
func ReadPlan(r io.Reader) (*Plan, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	p := &Plan{Header: tr.Header(), Sources: map[int]*trace.Record{}}
	byCase := p.Header.Tool == "fidolab run"
	groups := map[string]*Group{}
	group := func(label string) *Group {
		g := groups[label]
		if g == nil {
			g = &Group{Label: label}
			groups[label] = g
			p.Groups = append(p.Groups, g)
		}
		return g
	}
	last := map[*Group]time.Time{}
	unanswered := map[int]*Step{} // per source: its last request without an answer
	n := 0
	for rec, err := range tr.All() {
		if err != nil {
			return nil, err
		}
		if u := unanswered[rec.Src]; u != nil && rec.Src != 0 && rec.T.After(u.T) {
			u.Silent = rec.T.Sub(u.T)
			delete(unanswered, rec.Src)
		}
		var st *Step
		switch rec.Type {
		case trace.TypeSource:
			p.Sources[rec.Src] = rec
			continue
		case trace.TypeEvent:
			p.Events = append(p.Events, rec)
			continue
		case trace.TypeMark:
			label := ""
			if byCase {
				label = rec.Case
			}
			g := group(label)
			g.Marks = append(g.Marks, Mark{Before: len(g.Steps), Text: rec.Text, T: rec.T})
			if rec.Text != MarkReplug {
				continue
			}
			st = &Step{Src: rec.Src, T: rec.T, Replug: true}
		case trace.TypeExchange:
			var ok bool
			if st, ok = stepOf(rec); !ok {
				p.Ignored++
				continue
			}
			if st.Response == nil {
				unanswered[rec.Src] = st
			}
		default:
			continue
		}
		st.Line = tr.Line()
		label := ""
		if byCase {
			label = rec.Case
			if src := p.Sources[rec.Src]; rec.Type == trace.TypeExchange && src != nil {
				label = src.Case
			}
		}
		g := group(label)
		if st.Replug {
			n++
			st.Index = n
			g.Steps = append(g.Steps, st)
			continue
		}
		if prev, ok := last[g]; ok && st.T.After(prev) {
			st.Gap = st.T.Sub(prev)
		}
		last[g] = st.T
		if st.Response != nil && st.Response.T.After(st.T) {
			last[g] = st.Response.T
		}
		n++
		st.Index = n
		g.Steps = append(g.Steps, st)
	}
	if n == 0 {
		return nil, errors.New("the trace has no host requests to replay")
	}
	p.renumber()
	return p, nil
}

// stepOf turns an exchange record into a step; ok is false for one with no host request.
func stepOf(rec *trace.Record) (*Step, bool) {
	m := rec.Request
	if m == nil || m.Hex == nil {
		return nil, false
	}
	st := &Step{Src: rec.Src, N: rec.N, T: rec.T, Response: rec.Response, Cancelled: rec.Cancelled, Error: rec.Error,
		Keepalives: rec.Keepalives, KeepaliveStatus: rec.KeepaliveStatus}
	st.Request, _ = m.Payload()
	st.Redacted = m.Hex.Redacted
	switch {
	case m.HID == "-":
		st.HID, st.Unframed = ctaphid.CmdCBOR, true
	default:
		c, ok := trace.HIDCode(m.HID)
		if !ok {
			return nil, false
		}
		st.HID = c
	}
	switch st.HID {
	case ctaphid.CmdKeepalive, ctaphid.CmdError:
		return nil, false // what a key sends, not a request
	case ctaphid.CmdCBOR:
		if len(st.Request) > 0 {
			st.Cmd = ctap.Command(st.Request[0])
		}
	}
	if st.T.IsZero() {
		st.T = m.T
	}
	return st, true
}

// Select keeps the groups whose label contains sel (all when sel is ""), and renumbers the steps.
func (p *Plan) Select(sel string) error {
	if sel == "" {
		return nil
	}
	var kept []*Group
	var labels []string
	for _, g := range p.Groups {
		labels = append(labels, g.Label)
		if strings.Contains(g.Label, sel) {
			kept = append(kept, g)
		}
	}
	if len(kept) == 0 {
		if len(p.Groups) == 1 && p.Groups[0].Label == "" {
			return fmt.Errorf("--case %q: this trace is one key's traffic, not a run of cases", sel)
		}
		return fmt.Errorf("--case %q matches none of the trace's cases: %s", sel, strings.Join(labels, ", "))
	}
	p.Groups = kept
	p.renumber()
	return nil
}

// Only returns the plan narrowed to group g (sharing its records).
func (p *Plan) Only(g *Group) *Plan {
	q := *p
	q.Groups = []*Group{g}
	return &q
}

// renumber numbers the steps in the order they are replayed: group by group.
func (p *Plan) renumber() {
	n := 0
	for _, g := range p.Groups {
		for _, s := range g.Steps {
			n++
			s.Index = n
		}
	}
}

// Steps counts the plan's steps.
func (p *Plan) Steps() int {
	n := 0
	for _, g := range p.Groups {
		n += len(g.Steps)
	}
	return n
}

// GetInfo returns the first successful getInfo answer of the plan, decoded, and its step; nil
// when the trace has none.
func (p *Plan) GetInfo() (*ctap.GetInfoResponse, *Step) {
	for _, g := range p.Groups {
		if info, st := g.GetInfo(); info != nil {
			return info, st
		}
	}
	return nil, nil
}

// GetInfo returns the group's first successful getInfo answer, decoded.
func (g *Group) GetInfo() (*ctap.GetInfoResponse, *Step) {
	for _, s := range g.Steps {
		if s.Cmd != ctap.CmdGetInfo || s.Response == nil {
			continue
		}
		body, ok := okBody(s.Response)
		if !ok {
			continue
		}
		var info ctap.GetInfoResponse
		if err := ctap.DecMode().Unmarshal(body, &info); err != nil {
			continue
		}
		return &info, s
	}
	return nil, nil
}

// okBody returns the CBOR after a CTAP2_OK status byte of a recorded answer.
func okBody(m *trace.Message) ([]byte, bool) {
	b, _ := m.Payload()
	if len(b) == 0 || b[0] != byte(ctap.StatusOK) || (m.HID != "CBOR" && m.HID != "-") {
		return nil, false
	}
	return b[1:], true
}

// subCommandName names the subcommand of clientPIN, credentialManagement, bioEnrollment and
// authenticatorConfig requests.
func subCommandName(cmd ctap.Command, req []byte) string {
	key, names := uint64(0), map[uint64]string(nil)
	switch cmd {
	case ctap.CmdClientPIN:
		key, names = 2, pinSubNames
	case ctap.CmdCredentialManagement, ctap.CmdCredentialManagementPre:
		key, names = 1, cmSubNames
	case ctap.CmdBioEnrollment, ctap.CmdBioEnrollmentPre:
		key, names = 2, map[uint64]string{1: "enrollBegin", 2: "enrollCaptureNextSample", 3: "cancelCurrentEnrollment",
			4: "enumerateEnrollments", 5: "setFriendlyName", 6: "removeEnrollment", 7: "getFingerprintSensorInfo"}
	case ctap.CmdConfig:
		key, names = 1, map[uint64]string{1: "enableEnterpriseAttestation", 2: "toggleAlwaysUv", 3: "setMinPINLength"}
	default:
		return ""
	}
	m, err := decodeMap(req[1:])
	if err != nil {
		return ""
	}
	v, ok := asUint(m[key])
	if !ok {
		return ""
	}
	if n := names[v]; n != "" {
		return n
	}
	return fmt.Sprintf("subCommand 0x%02x", v)
}

var pinSubNames = map[uint64]string{1: "getPINRetries", 2: "getKeyAgreement", 3: "setPIN", 4: "changePIN",
	5: "getPinToken", 6: "getPinUvAuthTokenUsingUvWithPermissions", 7: "getUVRetries",
	9: "getPinUvAuthTokenUsingPinWithPermissions"}

var cmSubNames = map[uint64]string{1: "getCredsMetadata", 2: "enumerateRPsBegin", 3: "enumerateRPsGetNextRP",
	4: "enumerateCredentialsBegin", 5: "enumerateCredentialsGetNextCredential", 6: "deleteCredential",
	7: "updateUserInformation"}

func u2fName(apdu []byte) string {
	if len(apdu) < 2 {
		return "APDU"
	}
	switch apdu[1] {
	case 0x01:
		return "REGISTER"
	case 0x02:
		return "AUTHENTICATE"
	case 0x03:
		return "VERSION"
	}
	return fmt.Sprintf("INS 0x%02x", apdu[1])
}
