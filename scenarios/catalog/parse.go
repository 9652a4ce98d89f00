package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
	"go.yaml.in/yaml/v3"
)

// PersonaResolver turns a scenario's key.persona into a persona: a built-in name, or a file named
// relative to the scenario file.
type PersonaResolver func(ref string) (*persona.Persona, error)

// BuiltinPersonas resolves built-in persona names only.
func BuiltinPersonas(ref string) (*persona.Persona, error) { return persona.Builtin(ref) }

var (
	scenarioFields = []string{"id", "title", "section", "doc", "supported", "tags", "windows", "host", "key", "steps"}
	hostFields     = []string{"join", "enable", "sharedPC", "provisionedBeforePolicy", "online", "tenant"}
	tenantFields   = []string{"enforceAttestation", "aaguidAllow", "aaguidBlock"}
	keyFields      = []string{"persona", "pin", "accounts"}
	stepFields     = []string{"action", "account", "pin", "newPin", "pick", "args", "expect", "reason"}
	entryFields    = []string{"when", "outcome", "reason"}
	whenFields     = []string{"windows"}
	validID        = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	yamlLinePrefix = regexp.MustCompile(`^line \d+: `)
)

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
		p.fail(nil, "", "file larger than %d bytes", maxFileSize)
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
			p.errs = append(p.errs, &Error{File: file, Line: syntaxLine(err), Msg: yamlLinePrefix.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")})
			return nil, p.err()
		}
		if len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
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
		return nil, &Error{File: file, Line: 1, Msg: "no scenario in file"}
	}
	return out, nil
}

func (p *parser) scenario(n *yaml.Node, path string, resolve PersonaResolver) *Scenario {
	before := len(p.errs)
	fs, ok := p.fields(n, path, scenarioFields...)
	if !ok {
		return nil
	}
	s := &Scenario{File: p.file, Line: n.Line, Host: HostSetup{Online: true}, Key: KeySetup{PersonaRef: "default"}}
	if v := p.required(fs, path, "id"); v != nil {
		if id, ok := p.str(v, join(path, "id")); ok {
			if !validID.MatchString(id) {
				p.fail(v, join(path, "id"), "%q: use lower-case letters, digits, '-', '_' and '.'", id)
			}
			s.ID = id
		}
	}
	if path != "" && s.ID != "" {
		path = s.ID // errors inside a list say which scenario rather than its index
	}
	if v := p.required(fs, path, "title"); v != nil {
		s.Title, _ = p.str(v, join(path, "title"))
	}
	if v := p.required(fs, path, "doc"); v != nil {
		if s.Doc, ok = p.str(v, join(path, "doc")); ok && strings.TrimSpace(s.Doc) == "" {
			p.fail(v, join(path, "doc"), "empty: quote the document's words this scenario checks")
		}
		s.Doc = strings.TrimSpace(s.Doc)
	}
	if v := fs.get("section"); v != nil {
		s.Section, _ = p.str(v, join(path, "section"))
	}
	if v := p.required(fs, path, "supported"); v != nil {
		s.Supported, _ = p.boolean(v, join(path, "supported"))
	}
	if v := fs.get("tags"); v != nil {
		s.Tags, _ = p.strList(v, join(path, "tags"))
	}
	s.WindowsExpr = "all"
	if v := fs.get("windows"); v != nil {
		s.Windows, s.WindowsExpr = p.versions(v, join(path, "windows"))
	} else {
		s.Windows, _ = ParseVersions("all")
	}
	if v := p.required(fs, path, "host"); v != nil {
		p.hostSetup(v, join(path, "host"), &s.Host)
	}
	if v := fs.get("key"); v != nil {
		p.keySetup(v, join(path, "key"), &s.Key)
	}
	ref := s.Key.PersonaRef
	if per, err := resolve(ref); err != nil {
		at := fs.node
		if k := fs.get("key"); k != nil {
			at = k
		}
		p.fail(at, join(path, "key.persona"), "%v", err)
	} else {
		s.Key.Persona = per
	}
	if v := p.required(fs, path, "steps"); v != nil {
		p.steps(v, join(path, "steps"), s)
	}
	if len(p.errs) > before {
		return nil
	}
	return s
}

func (p *parser) versions(n *yaml.Node, field string) (VersionSet, string) {
	exprs, ok := p.strList(n, field)
	if !ok {
		return nil, ""
	}
	expr := strings.Join(exprs, ", ")
	vs, err := ParseVersions(expr)
	if err != nil {
		p.fail(n, field, "%v", err)
	}
	return vs, expr
}

func (p *parser) hostSetup(n *yaml.Node, path string, h *HostSetup) {
	fs, ok := p.fields(n, path, hostFields...)
	if !ok {
		return
	}
	if v := p.required(fs, path, "join"); v != nil {
		if j, ok := p.str(v, join(path, "join")); ok {
			if !slices.Contains(joins, host.Join(j)) {
				p.fail(v, join(path, "join"), "unknown join type %q (known: %s)", j, strings.Join(joinNames(), ", "))
			}
			h.Join = host.Join(j)
		}
	}
	if v := p.required(fs, path, "enable"); v != nil {
		if e, ok := p.str(v, join(path, "enable")); ok {
			if !slices.Contains(enablements, host.Enablement(e)) {
				p.fail(v, join(path, "enable"), "unknown enabling method %q (known: %s)", e, strings.Join(enableNames(), ", "))
			}
			h.Enable = host.Enablement(e)
		}
	}
	if v := fs.get("sharedPC"); v != nil {
		h.SharedPC, _ = p.boolean(v, join(path, "sharedPC"))
	}
	if v := fs.get("provisionedBeforePolicy"); v != nil {
		h.ProvisionedBeforePolicy, _ = p.boolean(v, join(path, "provisionedBeforePolicy"))
	}
	if v := fs.get("online"); v != nil {
		h.Online, _ = p.boolean(v, join(path, "online"))
	}
	if v := fs.get("tenant"); v != nil {
		tp := join(path, "tenant")
		ts, ok := p.fields(v, tp, tenantFields...)
		if !ok {
			return
		}
		if b := ts.get("enforceAttestation"); b != nil {
			h.Tenant.EnforceAttestation, _ = p.boolean(b, join(tp, "enforceAttestation"))
		}
		h.Tenant.AAGUIDAllow = p.aaguids(ts.get("aaguidAllow"), join(tp, "aaguidAllow"))
		h.Tenant.AAGUIDBlock = p.aaguids(ts.get("aaguidBlock"), join(tp, "aaguidBlock"))
	}
}

func (p *parser) aaguids(n *yaml.Node, field string) []string {
	if n == nil {
		return nil
	}
	list, ok := p.strList(n, field)
	if !ok {
		return nil
	}
	for i, a := range list {
		if err := aaguidArg(a); err != nil {
			at := n // a single scalar stands for a one-item list
			if i < len(n.Content) {
				at = n.Content[i]
			}
			p.fail(at, fmt.Sprintf("%s[%d]", field, i), "%v (or \"key\" for the key under test)", err)
		}
	}
	return list
}

func (p *parser) keySetup(n *yaml.Node, path string, k *KeySetup) {
	fs, ok := p.fields(n, path, keyFields...)
	if !ok {
		return
	}
	if v := fs.get("persona"); v != nil {
		k.PersonaRef, _ = p.str(v, join(path, "persona"))
	}
	if v := fs.get("pin"); v != nil {
		k.PIN, _ = p.str(v, join(path, "pin"))
	}
	if v := fs.get("accounts"); v != nil {
		k.Accounts, _ = p.strList(v, join(path, "accounts"))
		for i, a := range k.Accounts {
			if strings.TrimSpace(a) == "" || slices.Index(k.Accounts, a) != i {
				p.fail(v, join(path, "accounts"), "account %q empty or listed twice", a)
			}
		}
		if len(k.Accounts) > 0 && k.PIN == "" {
			p.fail(v, join(path, "pin"), "accounts are registered with user verification: give the key a pin")
		}
	}
}

func (p *parser) steps(n *yaml.Node, path string, s *Scenario) {
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		p.fail(n, path, "want a non-empty list of steps, got %s", kindName(n))
		return
	}
	accounts := slices.Clone(s.Key.Accounts)
	for i, sn := range n.Content {
		sp := fmt.Sprintf("%s[%d]", path, i)
		st, ok := p.step(sn, sp, &accounts)
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

func (p *parser) step(n *yaml.Node, path string, accounts *[]string) (Step, bool) {
	st := Step{Line: n.Line}
	before := len(p.errs)
	fs, ok := p.fields(n, path, stepFields...)
	if !ok {
		return st, false
	}
	a := &st.Action
	if v := p.required(fs, path, "action"); v != nil {
		a.Name, _ = p.str(v, join(path, "action"))
	}
	spec, known := actions[a.Name]
	if a.Name != "" && !known {
		p.fail(fs.get("action"), join(path, "action"), "unknown action %q (known: %s)", a.Name, strings.Join(Actions(), ", "))
	}
	for key, dst := range map[string]*string{"account": &a.Account, "pin": &a.PIN, "newPin": &a.NewPIN, "pick": &a.Pick} {
		if v := fs.get(key); v != nil {
			*dst, _ = p.str(v, join(path, key))
		}
	}
	if spec.needAccount && a.Account == "" {
		p.fail(n, join(path, "account"), "action %s needs an account", a.Name)
	}
	if spec.needNewPIN && a.NewPIN == "" {
		p.fail(n, join(path, "newPin"), "action %s needs a newPin", a.Name)
	}
	if a.Pick != "" && !slices.Contains(*accounts, a.Pick) {
		p.fail(fs.get("pick"), join(path, "pick"), "account %q is neither in key.accounts nor registered by an earlier step", a.Pick)
	}
	if v := fs.get("args"); v != nil {
		p.args(v, join(path, "args"), spec, a)
	}
	for _, r := range spec.required {
		if a.Args[r] == "" && known {
			p.fail(n, join(path, "args."+r), "action %s needs args.%s", a.Name, r)
		}
	}
	if a.Name == host.ActRegister && a.Account != "" && !slices.Contains(*accounts, a.Account) {
		*accounts = append(*accounts, a.Account)
	}
	reason := ""
	if v := fs.get("reason"); v != nil {
		reason, _ = p.str(v, join(path, "reason"))
	}
	if v := p.required(fs, path, "expect"); v != nil {
		st.Expect = p.expect(v, join(path, "expect"), reason)
	}
	return st, len(p.errs) == before
}

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
		val, ok := p.str(v, join(path, k.Value))
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
		fs, ok := p.fields(en, ep, entryFields...)
		if !ok {
			continue
		}
		r := reason
		if v := fs.get("reason"); v != nil {
			r, _ = p.str(v, join(ep, "reason"))
		}
		e := Expectation{}
		if v := fs.get("when"); v != nil {
			wp := join(ep, "when")
			if ws, ok := p.fields(v, wp, whenFields...); ok {
				if wv := p.required(ws, wp, "windows"); wv != nil {
					e.When, _ = p.versions(wv, join(wp, "windows"))
				}
			}
		} else if i != len(n.Content)-1 {
			p.fail(en, ep, "only the last entry may omit when (entries after it could never match)")
		}
		if v := p.required(fs, ep, "outcome"); v != nil {
			e.Outcome, ok = p.outcome(v, join(ep, "outcome"), r)
			if ok {
				out = append(out, e)
			}
		}
	}
	return out
}

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
			o.Reason, _ = p.str(v, join(path, "reason"))
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
		if v.Tag != "!!null" {
			val, _ = p.str(v, join(path, k.Value))
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
