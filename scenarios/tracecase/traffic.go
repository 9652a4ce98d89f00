package tracecase

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fxamacker/cbor/v2"
)

// entraRPID is the relying party of Windows sign-in and Entra web sign-in.
const entraRPID = "login.microsoft.com"

// fromTraffic reads a trace without runner marks (an imported event log, a served key's trace):
// each source (an operation of the event log, a host connection) is one action, read from the
// commands it sent, the process that sent them and how the key answered.
func (c *Case) fromTraffic(p *replay.Plan, g *replay.Group) error {
	c.Title = "Reproduces the case recorded in " + nonEmpty(p.Header.Comment, "a trace")
	c.ID = "field-report"
	c.Evidence = append(c.Evidence, "the CTAP traffic of the trace and the process that asked")
	c.Windows = guessVersion(c, p)
	c.Host = guessedHost(c)
	bySrc := map[int][]*replay.Step{}
	var order []int
	for _, s := range g.Steps {
		if _, ok := bySrc[s.Src]; !ok {
			order = append(order, s.Src)
		}
		bySrc[s.Src] = append(bySrc[s.Src], s)
	}
	pre := g.Preconditions()
	if pre.PIN {
		c.Key.PIN = StandInPIN
		c.guess("key.pin", "the key had a PIN (its getInfo says clientPin); no trace holds a PIN, so the scenario types %s for it", StandInPIN)
	}
	c.pin = c.Key.PIN
	names := accountNames{}
	for i := len(pre.Credentials) - 1; i >= 0; i-- { // registered oldest first: the key answers newest first
		cr := pre.Credentials[i]
		if cr.User == nil || cr.RPID != entraRPID {
			continue
		}
		c.Key.Accounts = append(c.Key.Accounts, names.of(cr.User))
	}
	if len(c.Key.Accounts) > 1 {
		c.guess("key.accounts", "registered in the reverse of the order the key returned them, as a key answering newest first (CTAP 2.1 §6.2.2) would have them")
	}
	for _, src := range order {
		steps := bySrc[src]
		proc := ""
		if s := p.Sources[src]; s != nil {
			proc = s.Process
			if c.Process == "" {
				c.Process = proc
			}
		}
		st, ok := c.actionOf(steps, proc, &names)
		if !ok {
			continue
		}
		c.Steps = append(c.Steps, st)
	}
	c.ID = idFrom(c)
	var what []string
	for _, st := range c.Steps {
		what = append(what, st.Action.Name+" → "+st.Outcome.String())
	}
	c.Title = "Field report (" + strings.TrimPrefix(nonEmpty(p.Header.Comment, "a trace"), "imported from ") + "): " + strings.Join(what, "; ")
	return nil
}

// accountNames names the accounts of a trace: a user's name when the key returned it, else a
// stable placeholder per user handle.
type accountNames map[string]string

func (a accountNames) of(u *ctap.UserEntity) string {
	h := hex.EncodeToString(u.ID)
	if n, ok := a[h]; ok {
		return n
	}
	n := strings.Join(strings.Fields(u.Name), " ")
	if n == "" {
		n = fmt.Sprintf("user-%d", len(a)+1)
	}
	for taken := true; taken; {
		taken = false
		for _, v := range a {
			if v == n { // two users of one name: told apart, as the catalog needs
				n, taken = fmt.Sprintf("%s-%d", n, len(a)+1), true
				break
			}
		}
	}
	a[h] = n
	return n
}

// actionOf reads one operation's action and outcome.
func (c *Case) actionOf(steps []*replay.Step, process string, names *accountNames) (Step, bool) {
	var decisive *replay.Step
	kind := ""
	for _, s := range steps {
		sub := subName(s)
		switch {
		case s.Cmd == ctap.CmdBioEnrollment || s.Cmd == ctap.CmdBioEnrollmentPre:
			kind, decisive = host.ActEnrollFingerprint, s
		case s.Cmd == ctap.CmdClientPIN && sub == "changePIN":
			kind, decisive = host.ActChangePIN, s
		case s.Cmd == ctap.CmdReset:
			kind, decisive = host.ActResetKey, s
		case s.Cmd == ctap.CmdMakeCredential && kind == "":
			kind, decisive = host.ActRegister, s
		case s.Cmd == ctap.CmdGetAssertion && kind == "":
			kind, decisive = signInKind(s, process), s
		case s.Cmd == ctap.CmdClientPIN && sub == "setPIN" && kind == "":
			kind, decisive = host.ActSetPIN, s
		}
	}
	if decisive == nil {
		return Step{}, false
	}
	st := Step{Action: host.Action{Name: kind}, Trace: steps}
	// The first failure before the decisive exchange is what the user saw (a wrong PIN stops there).
	for _, s := range steps {
		if s == decisive {
			break
		}
		if code := failureCode(s); code != "" && s.Cmd == ctap.CmdClientPIN {
			decisive = s
			break
		}
	}
	typed := false
	for _, s := range steps {
		if s.Cmd == ctap.CmdClientPIN && strings.HasPrefix(subName(s), "getPin") && !strings.Contains(subName(s), "UsingUv") {
			typed = true
		}
	}
	st.Outcome, st.Reason = c.outcomeOf(kind, decisive, steps, names, &st)
	c.fillPINs(&st, typed)
	if kind == host.ActRegister && st.Action.Account == "" {
		st.Action.Account = st.Outcome.Account
	}
	return st, true
}

// signInKind tells a lock-screen sign-in from a browser's.
func signInKind(s *replay.Step, process string) string {
	p := strings.ToLower(process)
	switch {
	case strings.HasPrefix(p, "logonui"):
		return host.ActLockScreenSignIn
	case strings.Contains(p, "logonui") && rpOf(s) == entraRPID:
		return host.ActLockScreenSignIn
	case rpOf(s) == entraRPID && p == "":
		return host.ActLockScreenSignIn
	}
	return host.ActWebAuthnSignIn
}

func rpOf(s *replay.Step) string {
	m := reqMap(s)
	if s.Cmd == ctap.CmdMakeCredential {
		if rp, ok := m[uint64(2)].(map[any]any); ok {
			id, _ := rp["id"].(string)
			return id
		}
		return ""
	}
	id, _ := m[uint64(1)].(string)
	return id
}

func reqMap(s *replay.Step) map[any]any {
	if len(s.Request) < 2 {
		return nil
	}
	var m map[any]any
	_ = cbor.Unmarshal(s.Request[1:], &m)
	return m
}

func respMap(s *replay.Step) map[any]any {
	if s.Response == nil {
		return nil
	}
	b, _ := s.Response.Payload()
	if len(b) < 2 {
		return nil
	}
	var m map[any]any
	_ = cbor.Unmarshal(b[1:], &m)
	return m
}

func subName(s *replay.Step) string {
	name := s.Name()
	_, sub, _ := strings.Cut(name, " ")
	return sub
}

// failureCode maps the CTAP status of an answer to the outcome code Windows shows for it; "" when
// the answer was a success.
func failureCode(s *replay.Step) string {
	if s.Response == nil {
		return host.CodeTimeout
	}
	switch st := statusOf(s); st {
	case ctap.StatusOK:
		return ""
	case ctap.ErrPINInvalid:
		return host.CodePINInvalid
	case ctap.ErrPINBlocked:
		return host.CodePINBlocked
	case ctap.ErrPINAuthBlocked:
		return host.CodePINAuthBlocked
	case ctap.ErrPUATRequired, ctap.ErrPINNotSet:
		return host.CodePINRequired
	case ctap.ErrPINPolicyViolation:
		return host.CodePINPolicy
	case ctap.ErrNoCredentials:
		return host.CodeNoCredentials
	case ctap.ErrKeyStoreFull:
		return host.CodeKeyStoreFull
	case ctap.ErrKeepaliveCancel, ctap.ErrOperationDenied:
		return host.CodeUserCancelled
	case ctap.ErrUserActionTimeout:
		return host.CodeTimeout
	case ctap.ErrNotAllowed:
		if s.Cmd == ctap.CmdReset {
			return host.CodeResetNotAllowed
		}
	}
	return host.CodeKeyError
}

// outcomeOf reads what the user saw of an action from its decisive exchange.
func (c *Case) outcomeOf(kind string, s *replay.Step, steps []*replay.Step, names *accountNames, st *Step) (result.Outcome, string) {
	status := "no answer"
	if s.Response != nil {
		status = s.Response.Status
	}
	if code := failureCode(s); code != "" {
		switch {
		case code == host.CodeKeyError:
			st.Guessed = "Windows' message for " + status + " is not known: key-error stands for it"
		case code == host.CodeNoCredentials && unknownAllowList(s, steps):
			st.Guessed = "the site asked for credentials the key never made in the trace (its allowList): they were made elsewhere or erased; " +
				"the model's sign-in asks for the account's own, so against it this step may well sign in"
		case (kind == host.ActWebAuthnSignIn || kind == host.ActRegister) && rpOf(s) != entraRPID && rpOf(s) != "":
			st.Guessed = "the trace talks to " + rpOf(s) + "; the catalog's " + kind + " talks to Entra ID, which stands in for it"
		}
		return result.Outcome{Kind: host.KindError, Code: code}, fmt.Sprintf("the key answered %s (trace line %d)", status, s.Line)
	}
	reason := fmt.Sprintf("the key answered %s (trace line %d)", status, s.Line)
	switch kind {
	case host.ActRegister:
		u := userOf(reqMap(s), 3)
		if rp := rpOf(s); rp != entraRPID {
			st.Guessed = "the trace registers at " + rp + "; the catalog's register action registers with Entra ID, which stands in for it"
		}
		if u == nil {
			return result.Outcome{Kind: host.KindRegistered, Account: "user-1"}, reason
		}
		return result.Outcome{Kind: host.KindRegistered, Account: names.of(u)}, reason
	case host.ActLockScreenSignIn, host.ActWebAuthnSignIn:
		if rp := rpOf(s); rp != entraRPID {
			st.Guessed = "the trace signs in to " + rp + "; the catalog's webauthn-sign-in signs in to an Entra app, which stands in for it"
		}
		u := userOf(respMap(s), 4)
		if u == nil {
			return result.Outcome{Kind: host.KindSignedIn, Account: nonEmpty(firstAccount(c), "user-1")}, reason +
				"; the key named no user (one credential): the account on the key"
		}
		return result.Outcome{Kind: host.KindSignedIn, Account: names.of(u)}, reason
	}
	return result.Outcome{Kind: host.KindDone}, reason
}

// unknownAllowList reports whether s's allowList names credentials no makeCredential of the trace made.
func unknownAllowList(s *replay.Step, steps []*replay.Step) bool {
	list, _ := reqMap(s)[uint64(3)].([]any)
	return len(list) > 0
}

func firstAccount(c *Case) string {
	if len(c.Key.Accounts) > 0 {
		return c.Key.Accounts[len(c.Key.Accounts)-1]
	}
	return ""
}

func userOf(m map[any]any, key uint64) *ctap.UserEntity {
	u, ok := m[key].(map[any]any)
	if !ok {
		return nil
	}
	id, _ := u["id"].([]byte)
	name, _ := u["name"].(string)
	return &ctap.UserEntity{ID: id, Name: name}
}

// guessVersion reads the Windows version from the event log's ApiVersion event: a lower bound at
// best, since no official map from build to WebAuthN API version exists.
func guessVersion(c *Case, p *replay.Plan) host.Version {
	newest := host.Versions[len(host.Versions)-1]
	for _, ev := range p.Events {
		if ev.EventID != 1071 {
			continue
		}
		v, err := strconv.Atoi(strings.TrimSpace(ev.Fields["value"]))
		if err != nil {
			continue
		}
		name := "11-24H2"
		switch {
		case v <= 1:
			name = "10-1903"
		case v == 2:
			name = "10-2004"
		case v == 3:
			name = "10-21H2"
		case v == 4:
			name = "11-22H2"
		case v <= 6:
			name = "11-23H2"
		}
		ver, _ := host.ParseVersion(name)
		c.guess("windows", "the event log reports WebAuthN API version %d, which Windows %s is the earliest to report as far as fidolab knows "+
			"(there is no official map from build to API version); give --windows to set it", v, ver.Name)
		return ver
	}
	c.guess("windows", "the trace does not say which Windows version it came from: the newest, %s; give --windows to set it", newest.Name)
	return newest
}

// guessedHost is the device of a case whose trace does not describe it: an Entra joined device
// with security-key sign-in enabled, online — the set-up under which the recorded traffic could
// happen at all.
func guessedHost(c *Case) host.Config {
	c.guess("host", "the trace does not describe the device: Entra joined, enabled through Intune (OMA-URI), online, "+
		"the set-up in which the recorded sign-in could happen; edit to the reporter's")
	return host.Config{Join: host.JoinEntra, Enable: host.EnableIntuneOMA, Online: true,
		OnPrem: host.OnPremises{KerberosServer: true, PatchedDCs: true}}
}

// idFrom names an inferred case by what it did.
func idFrom(c *Case) string {
	if len(c.Steps) == 0 {
		return "field-report"
	}
	last := c.Steps[len(c.Steps)-1]
	id := "field-" + last.Action.Name
	if last.Outcome.Code != "" {
		id += "-" + last.Outcome.Code
	}
	return id
}
