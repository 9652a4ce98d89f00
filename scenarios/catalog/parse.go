package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/fidolab/fidolab/scenarios/fieldmatch"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/userfile"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"go.yaml.in/yaml/v3"
)

// PersonaResolver turns a scenario's key.persona into a persona: a built-in name, or a file named
// relative to the scenario file.
type PersonaResolver func(ref string) (*persona.Persona, error)

// BuiltinPersonas resolves built-in persona names only.
func BuiltinPersonas(ref string) (*persona.Persona, error) { return persona.Builtin(ref) }

var validID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// maxFileSize bounds one catalog file; hand-written scenarios are a few kilobytes.
const maxFileSize = 1 << 20

// Parse reads the scenarios of one file: a single scenario (a mapping), a list of scenarios, or
// several YAML documents separated by "---". file names the file in errors; resolve finds personas
// (nil means built-in names only). Every problem found is reported, each with file, line and field.
func Parse(data []byte, file string, resolve PersonaResolver) ([]*Scenario, error) {
	p := &parser{file: file}
	if resolve == nil {
		resolve = BuiltinPersonas
	}
	if len(data) > maxFileSize {
		p.fail(nil, "", "larger than %s: not a scenario file", userfile.Size(maxFileSize))
		return nil, p.err()
	}
	var out []*Scenario
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.errs = append(p.errs, syntaxError(file, err))
			return nil, p.err()
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
			continue // an empty document ("---" alone)
		}
		if p.aliases(root) {
			continue
		}
		switch root.Kind {
		case yaml.MappingNode:
			if s := p.scenario(root, "", resolve); s != nil {
				out = append(out, s)
			}
		case yaml.SequenceNode:
			for i, n := range root.Content {
				if s := p.scenario(n, fmt.Sprintf("[%d]", i), resolve); s != nil {
					out = append(out, s)
				}
			}
		default:
			p.fail(root, "", "want a scenario (a mapping) or a list of scenarios, got %s", kindName(root))
		}
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, &Error{File: file, Msg: "no scenario in the file (an empty file, or only comments)"}
	}
	return out, nil
}

func (p *parser) scenario(n *yaml.Node, path string, resolve PersonaResolver) *Scenario {
	before := len(p.errs)
	var d scenarioDoc
	if err := n.Decode(&d); err != nil || !d.given() {
		p.fail(n, path, "want a scenario (a mapping), got %s", kindName(n))
		return nil
	}
	if path != "" && ok(&d.ID) && validID.MatchString(d.ID.V) {
		path = d.ID.V // errors inside a list say which scenario rather than its index
	}
	if !p.report(&d, path) {
		return nil
	}
	s := &Scenario{
		ID: d.ID.V, Title: d.Title.V, Section: d.Section.V, Doc: strings.TrimSpace(d.Doc.V), Supported: d.Supported.V,
		Tags: d.Tags.V, File: p.file, Line: n.Line, Key: KeySetup{PersonaRef: "default"},
		// A device is online, and a hybrid joined one's organisation did the on-premises steps,
		// unless the file says otherwise.
		Host: HostSetup{Online: true, OnPrem: host.OnPremises{KerberosServer: true, PatchedDCs: true}},
	}
	if ok(&d.ID) && !validID.MatchString(s.ID) {
		p.fail(d.ID.node, join(path, "id"), "%q: use lower-case letters, digits, '-', '_' and '.'", s.ID)
	}
	if ok(&d.Doc) && s.Doc == "" {
		p.fail(d.Doc.node, join(path, "doc"), "empty: quote the document's words this scenario checks")
	}
	s.Windows, s.WindowsExpr = p.versions(&d.Windows, join(path, "windows"))
	if d.Host.given() && p.report(&d.Host, join(path, "host")) {
		p.hostSetup(&d.Host, join(path, "host"), &s.Host)
	}
	if d.Key.given() && p.report(&d.Key, join(path, "key")) {
		p.keySetup(&d.Key, join(path, "key"), &s.Key)
	}
	p.fieldReport(&d, path, s)
	if per, err := resolve(s.Key.PersonaRef); err != nil {
		at := n
		if d.Key.given() {
			at = d.Key.node
		}
		p.fail(at, join(path, "key.persona"), "%v", err)
	} else {
		s.Key.Persona = per
	}
	if ok(&d.Steps) {
		p.steps(&d.Steps, join(path, "steps"), s)
	}
	if len(p.errs) > before {
		return nil
	}
	return s
}

// versions reads a windows field: every version when the file leaves it out.
func (p *parser) versions(t *texts, field string) (VersionSet, string) {
	if !t.given() {
		vs, _ := ParseVersions("all")
		return vs, "all"
	}
	if !ok(t) {
		return nil, ""
	}
	expr := strings.Join(t.V, ", ")
	vs, err := ParseVersions(expr)
	if err != nil {
		p.fail(t.node, field, "%v", err)
	}
	return vs, expr
}

func (p *parser) hostSetup(d *hostDoc, path string, h *HostSetup) {
	h.Join, h.Enable = host.Join(d.Join.V), host.Enablement(d.Enable.V)
	if ok(&d.Join) && !slices.Contains(joins, h.Join) {
		p.fail(d.Join.node, join(path, "join"), "unknown join type %q (known: %s)", d.Join.V, strings.Join(joinNames(), ", "))
	}
	if ok(&d.Enable) && !slices.Contains(enablements, h.Enable) {
		p.fail(d.Enable.node, join(path, "enable"), "unknown enabling method %q (known: %s)", d.Enable.V, strings.Join(enableNames(), ", "))
	}
	h.SharedPC, h.ProvisionedBeforePolicy = d.SharedPC.V, d.ProvisionedBeforePolicy.V
	if d.Online.given() {
		h.Online = d.Online.V
	}
	if d.HelloForBusiness.given() {
		h.HelloForBusiness = host.HelloForBusiness(d.HelloForBusiness.V)
		if ok(&d.HelloForBusiness) && !slices.Contains(whfbSettings, h.HelloForBusiness) {
			p.fail(d.HelloForBusiness.node, join(path, "helloForBusiness"), "unknown setting %q (known: %s)", d.HelloForBusiness.V, strings.Join(whfbNames(), ", "))
		}
	}
	if d.OnPremises.given() && p.report(&d.OnPremises, join(path, "onPremises")) {
		if d.OnPremises.KerberosServer.given() {
			h.OnPrem.KerberosServer = d.OnPremises.KerberosServer.V
		}
		if d.OnPremises.PatchedDCs.given() {
			h.OnPrem.PatchedDCs = d.OnPremises.PatchedDCs.V
		}
	}
	for _, pr := range d.Probes.V {
		if !slices.Contains(host.Probes, pr) {
			p.fail(d.Probes.node, join(path, "probes"), "unknown probe %q (known: %s)", pr, strings.Join(host.Probes, ", "))
			continue
		}
		h.Probes = append(h.Probes, pr)
	}
	if !d.Tenant.given() || !p.report(&d.Tenant, join(path, "tenant")) {
		return
	}
	tp := join(path, "tenant")
	h.Tenant.EnforceAttestation = d.Tenant.EnforceAttestation.V
	h.Tenant.CounterMustIncrease = d.Tenant.CounterMustIncrease.V
	h.Tenant.AAGUIDAllow = p.aaguids(&d.Tenant.AAGUIDAllow, join(tp, "aaguidAllow"))
	h.Tenant.AAGUIDBlock = p.aaguids(&d.Tenant.AAGUIDBlock, join(tp, "aaguidBlock"))
}

func (p *parser) aaguids(t *texts, field string) []string {
	if !ok(t) {
		return nil
	}
	for i, a := range t.V {
		if err := aaguidArg(a); err != nil {
			p.fail(t.line(i), fmt.Sprintf("%s[%d]", field, i), "%v (or \"key\" for the key under test)", err)
		}
	}
	return t.V
}

func (p *parser) keySetup(d *keyDoc, path string, k *KeySetup) {
	if d.Persona.given() {
		k.PersonaRef = d.Persona.V
	}
	k.PIN, k.Accounts = d.PIN.V, d.Accounts.V
	if !ok(&d.Accounts) {
		return
	}
	for i, a := range k.Accounts {
		if strings.TrimSpace(a) == "" || slices.Index(k.Accounts, a) != i {
			p.fail(d.Accounts.node, join(path, "accounts"), "account %q empty or listed twice", a)
		}
	}
	if len(k.Accounts) > 0 && k.PIN == "" {
		p.fail(d.Accounts.node, join(path, "pin"), "accounts are registered with user verification: give the key a pin")
	}
}

func (p *parser) steps(l *list[stepDoc], path string, s *Scenario) {
	accounts := slices.Clone(s.Key.Accounts)
	for i := range l.Items {
		sn, sp := l.node.Content[i], fmt.Sprintf("%s[%d]", path, i)
		st, ok := p.step(&l.Items[i], sn, sp, &accounts)
		if !ok {
			continue
		}
		for _, v := range s.Windows {
			if _, ok := st.Expected(v); !ok {
				p.fail(sn, join(sp, "expect"), "no outcome for Windows %s (add an entry without when)", v.Name)
				break
			}
		}
		for _, e := range st.Expect {
			if kinds[e.Outcome.Kind] == "account" && !slices.Contains(accounts, e.Outcome.Account) {
				p.fail(sn, join(sp, "expect"), "account %q is neither in key.accounts nor registered by an earlier step", e.Outcome.Account)
			}
		}
		s.Steps = append(s.Steps, st)
	}
}

func (p *parser) step(d *stepDoc, n *yaml.Node, path string, accounts *[]string) (Step, bool) {
	st := Step{Line: n.Line}
	before := len(p.errs)
	if !d.given() {
		p.fail(n, path, "want a mapping (key: value lines), got %s", kindName(n))
		return st, false
	}
	if !p.report(d, path) {
		return st, false
	}
	a := &st.Action
	a.Name, a.Account, a.PIN, a.NewPIN, a.Pick = d.Action.V, d.Account.V, d.PIN.V, d.NewPIN.V, d.Pick.V
	spec, known := actions[a.Name]
	if ok(&d.Action) && !known {
		p.fail(d.Action.node, join(path, "action"), "unknown action %q (known: %s)", a.Name, strings.Join(Actions(), ", "))
	}
	if spec.needAccount && a.Account == "" {
		p.fail(n, join(path, "account"), "action %s needs an account", a.Name)
	}
	if spec.needNewPIN && a.NewPIN == "" {
		p.fail(n, join(path, "newPin"), "action %s needs a newPin", a.Name)
	}
	if a.Pick != "" && !slices.Contains(*accounts, a.Pick) {
		p.fail(d.Pick.node, join(path, "pick"), "account %q is neither in key.accounts nor registered by an earlier step", a.Pick)
	}
	if d.Args.Kind != 0 {
		p.args(&d.Args, join(path, "args"), spec, a)
	}
	for _, r := range spec.required {
		if a.Args[r] == "" && known {
			p.fail(n, join(path, "args."+r), "action %s needs args.%s", a.Name, r)
		}
	}
	if (a.Name == host.ActRegister || a.Name == host.ActRegisterOtherSite || a.Name == host.ActRegisterOtherTenant) && a.Account != "" && !slices.Contains(*accounts, a.Account) {
		*accounts = append(*accounts, a.Account)
	}
	if d.Expect.Kind != 0 {
		st.Expect = p.expect(&d.Expect, join(path, "expect"), d.Reason.V)
	}
	return st, len(p.errs) == before
}

// args reads an action's arguments: a mapping whose keys depend on the action.
func (p *parser) args(n *yaml.Node, path string, spec actionSpec, a *host.Action) {
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want a mapping, got %s", kindName(n))
		return
	}
	a.Args = map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		check, ok := spec.args[k.Value]
		if !ok {
			var known []string
			for name := range spec.args {
				known = append(known, name)
			}
			slices.Sort(known)
			p.fail(k, join(path, k.Value), "action %s takes no argument %q (takes: %s)", a.Name, k.Value, strings.Join(known, ", "))
			continue
		}
		val, ok := p.scalar(v, join(path, k.Value))
		if !ok {
			continue
		}
		if err := check(val); err != nil {
			p.fail(v, join(path, k.Value), "%v", err)
		}
		a.Args[k.Value] = val
	}
}

// expect reads the three forms: `done`, `{signed-in: bob}` (optionally with reason), or a list of
// `{when: {windows: EXPR}, outcome: FORM, reason: TEXT}` entries.
func (p *parser) expect(n *yaml.Node, path, reason string) []Expectation {
	if n.Kind != yaml.SequenceNode {
		o, ok := p.outcome(n, path, reason)
		if !ok {
			return nil
		}
		return []Expectation{{Outcome: o}}
	}
	if len(n.Content) == 0 {
		p.fail(n, path, "empty list of outcomes")
		return nil
	}
	var out []Expectation
	for i, en := range n.Content {
		ep := fmt.Sprintf("%s[%d]", path, i)
		var d entryDoc
		if err := en.Decode(&d); err != nil || !d.given() {
			p.fail(en, ep, "want a mapping (key: value lines), got %s", kindName(en))
			continue
		}
		if !p.report(&d, ep) {
			continue
		}
		e := Expectation{}
		if d.When.given() {
			if p.report(&d.When, join(ep, "when")) && d.When.Windows.given() {
				e.When, _ = p.versions(&d.When.Windows, join(ep, "when.windows"))
			}
		} else if i != len(n.Content)-1 && d.empty["when"] == nil {
			p.fail(en, ep, "only the last entry may omit when (entries after it could never match)")
		}
		r := reason
		if d.Reason.given() {
			r = d.Reason.V
		}
		if d.Outcome.Kind != 0 {
			if o, ok := p.outcome(&d.Outcome, join(ep, "outcome"), r); ok {
				e.Outcome = o
				out = append(out, e)
			}
		}
	}
	return out
}

// outcome reads `done` or a mapping of one outcome kind (and a reason); its keys are the kinds.
func (p *parser) outcome(n *yaml.Node, path, reason string) (result.Outcome, bool) {
	o := result.Outcome{Reason: reason}
	if n.Kind == yaml.ScalarNode {
		if n.Value != host.KindDone {
			p.fail(n, path, "want `done` or a mapping like {signed-in: bob} or {error: pin-invalid}, got %s", kindName(n))
			return o, false
		}
		o.Kind = host.KindDone
		return o, true
	}
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "want an outcome like {signed-in: bob}, {error: pin-invalid} or done, got %s", kindName(n))
		return o, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "reason" {
			if r, ok := p.scalar(v, join(path, "reason")); ok {
				o.Reason = r
			}
			continue
		}
		what, ok := kinds[k.Value]
		if !ok {
			if k.Value == "when" || k.Value == "outcome" {
				p.fail(k, join(path, k.Value), "an entry with when/outcome must be an item of a list (start it with -)")
			} else {
				p.fail(k, join(path, k.Value), "unknown outcome kind %q (known: %s)", k.Value, strings.Join(Kinds(), ", "))
			}
			return o, false
		}
		if o.Kind != "" {
			p.fail(k, join(path, k.Value), "two outcome kinds (%s and %s) in one outcome", o.Kind, k.Value)
			return o, false
		}
		o.Kind = k.Value
		val := ""
		if v.ShortTag() != "!!null" {
			val, _ = p.scalar(v, join(path, k.Value))
		}
		switch what {
		case "account":
			if val == "" {
				p.fail(v, join(path, k.Value), "%s needs an account", k.Value)
				return o, false
			}
			o.Account = val
		case "code":
			if !slices.Contains(codes, val) {
				p.fail(v, path, "unknown outcome code %q (known: %s)", val, strings.Join(codes, ", "))
				return o, false
			}
			o.Code = val
		default:
			if val != "" {
				p.fail(v, join(path, k.Value), "%s takes no value", k.Value)
				return o, false
			}
		}
	}
	if o.Kind == "" {
		p.fail(n, path, "no outcome kind (known: %s)", strings.Join(Kinds(), ", "))
		return o, false
	}
	return o, true
}

// scalar is the text of n, a value inside a mapping whose keys parse.go reads itself.
func (p *parser) scalar(n *yaml.Node, field string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		p.fail(n, field, "want a text value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// aliases reports every alias (*name) under n. Decoding would expand them, and a few lines of
// aliases of aliases expand to millions of steps; a scenario file has no need for them.
func (p *parser) aliases(n *yaml.Node) bool {
	if n.Kind == yaml.AliasNode {
		p.fail(n, "", "aliases (*%s) are not supported in scenario files", n.Value)
		return true
	}
	found := false
	for _, c := range n.Content {
		found = p.aliases(c) || found
	}
	return found
}

// windowsEvents are the Microsoft-Windows-WebAuthN/Operational event IDs a report may point to
// (/work reference: the WebAuthN event log tables in docs/traces.md).
var windowsEvents = []int{1000, 1001, 1002, 1003, 1004, 1005, 1060, 1071, 1100, 1101, 1102, 1103, 1104,
	2100, 2102, 2103, 2104, 2105, 2106, 2225, 2226}

// fieldReport checks the report block, which only a scenario tagged field-report may have (every
// built-in one has it; one written by fidolab trace scenario from a trace has none).
func (p *parser) fieldReport(d *scenarioDoc, path string, s *Scenario) {
	tagged := slices.Contains(s.Tags, TagFieldReport)
	rp := join(path, "report")
	if !d.Report.given() {
		return // fidolab trace scenario writes field-report scenarios from a trace, without one
	}
	if !tagged {
		p.fail(d.Report.node, rp, "only a scenario tagged %s has a report", TagFieldReport)
	}
	if !p.report(&d.Report, rp) {
		return
	}
	r := &Report{Source: d.Report.Source.V, Quote: strings.TrimSpace(d.Report.Quote.V), Windows: d.Report.Windows.V,
		Trigger: strings.TrimSpace(d.Report.Trigger.V), Sees: strings.TrimSpace(d.Report.Sees.V), Match: d.Report.Match.V}
	if ok(&d.Report.Source) && !strings.HasPrefix(r.Source, "https://") {
		p.fail(d.Report.Source.node, join(rp, "source"), "%q: cite the public report by its https:// address", r.Source)
	}
	if ok(&d.Report.Windows) && r.Windows != "confirmed" && r.Windows != "inferred" {
		p.fail(d.Report.Windows.node, join(rp, "windows"), "%q: want confirmed or inferred", r.Windows)
	}
	for _, e := range d.Report.Events.V {
		id, err := strconv.Atoi(e)
		if err != nil || !slices.Contains(windowsEvents, id) {
			p.fail(d.Report.Events.node, join(rp, "events"), "%q is not a WebAuthN/Operational event ID this catalog knows", e)
			continue
		}
		r.Events = append(r.Events, id)
	}
	for _, m := range r.Match {
		if _, err := fieldmatch.Parse(m); err != nil {
			p.fail(d.Report.Match.node, join(rp, "match"), "%v", err)
		}
	}
	s.Report = r
}
