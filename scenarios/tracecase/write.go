package tracecase

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fidolab/fidolab/harness/keyprofile"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/scenarios/host"
	"github.com/fidolab/fidolab/scenarios/result"
)

// Magic starts every scenario file trace scenario writes: such a file may be replaced, no other.
const Magic = "# fidolab trace scenario"

// WriteYAML writes the case as a catalog scenario file. personaRef is what key.persona names
// (the persona file beside it, relative to the scenario). Guesses are comments starting with
// GUESS, next to the field they concern.
func (c *Case) WriteYAML(w io.Writer, personaRef, source string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: reproduces %s\n", Magic, nonEmpty(source, "a trace"))
	b.WriteString("# Run it: fidolab run --catalog DIR --filter " + c.ID + " (DIR holds this file).\n")
	b.WriteString("# Lines marked GUESS were not in the trace; check them against the user's report.\n")
	for _, e := range c.Evidence {
		b.WriteString("# Read from " + e + ".\n")
	}
	if c.Process != "" {
		b.WriteString("# The process that talked to the key: " + oneLine(c.Process) + "\n")
	}
	field(&b, "", "id", c.ID)
	field(&b, "", "title", c.Title)
	section, doc := "Field report", "Reproduces "+nonEmpty(source, "a trace")+"."
	supported := true
	if c.Known != nil {
		section, doc, supported = c.Known.Section, c.Known.Doc, c.Known.Supported
	}
	field(&b, "", "section", section)
	field(&b, "", "doc", doc)
	fmt.Fprintf(&b, "supported: %t\n", supported)
	b.WriteString("tags: [field-report]\n")
	c.comment(&b, "", "windows")
	field(&b, "", "windows", c.Windows.Name)
	c.comment(&b, "", "host")
	b.WriteString("host:\n")
	field(&b, "  ", "join", string(c.Host.Join))
	field(&b, "  ", "enable", string(c.Host.Enable))
	if c.Host.SharedPC {
		b.WriteString("  sharedPC: true\n")
	}
	if c.Host.ProvisionedBeforePolicy {
		b.WriteString("  provisionedBeforePolicy: true\n")
	}
	fmt.Fprintf(&b, "  online: %t\n", c.Host.Online)
	if t := c.Host.Tenant; t.EnforceAttestation || len(t.AAGUIDAllow) > 0 || len(t.AAGUIDBlock) > 0 || t.CounterMustIncrease {
		b.WriteString("  tenant:\n")
		if t.EnforceAttestation {
			b.WriteString("    enforceAttestation: true\n")
		}
		list(&b, "    ", "aaguidAllow", t.AAGUIDAllow)
		list(&b, "    ", "aaguidBlock", t.AAGUIDBlock)
		if t.CounterMustIncrease {
			b.WriteString("    counterMustIncrease: true\n")
		}
	}
	// A catalog host has its on-premises set-up done unless it says otherwise.
	if o := c.Host.OnPrem; !o.Ready() {
		fmt.Fprintf(&b, "  onPremises:\n    kerberosServer: %t\n    patchedDCs: %t\n", o.KerberosServer, o.PatchedDCs)
	}
	if c.Host.HelloForBusiness != "" {
		field(&b, "  ", "helloForBusiness", string(c.Host.HelloForBusiness))
	}
	// The field-report probes the recorded case had Windows send (they shaped its traffic).
	list(&b, "  ", "probes", c.Host.Probes)
	b.WriteString("key:\n")
	field(&b, "  ", "persona", personaRef)
	c.comment(&b, "  ", "key.pin")
	if c.Key.PIN != "" || len(c.Key.Accounts) > 0 {
		field(&b, "  ", "pin", nonEmpty(c.Key.PIN, StandInPIN))
	}
	c.comment(&b, "  ", "key.accounts")
	list(&b, "  ", "accounts", c.Key.Accounts)
	b.WriteString("steps:\n")
	for _, st := range c.Steps {
		a := st.Action
		if st.Guessed != "" {
			b.WriteString("  # GUESS: " + oneLine(st.Guessed) + "\n")
		}
		field(&b, "  - ", "action", a.Name)
		ind := "    "
		if a.Account != "" {
			field(&b, ind, "account", a.Account)
		}
		if a.PIN != "" {
			field(&b, ind, "pin", a.PIN)
		}
		if a.NewPIN != "" {
			field(&b, ind, "newPin", a.NewPIN)
		}
		if a.Pick != "" {
			field(&b, ind, "pick", a.Pick)
		}
		if len(a.Args) > 0 {
			b.WriteString(ind + "args: {")
			keys := make([]string, 0, len(a.Args))
			for k := range a.Args {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for i, k := range keys {
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(k + ": " + scalar(a.Args[k]))
			}
			b.WriteString("}\n")
		}
		b.WriteString(ind + "expect: " + outcomeYAML(st.Outcome) + "\n")
		if st.Reason != "" {
			field(&b, ind, "reason", st.Reason)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (c *Case) comment(b *strings.Builder, indent, f string) {
	for _, g := range c.Guesses {
		if g.Field == f {
			b.WriteString(indent + "# GUESS: " + oneLine(g.Why) + "\n")
		}
	}
}

func outcomeYAML(o result.Outcome) string {
	switch {
	case o.Kind == host.KindDone || o.Kind == "":
		return "done"
	case o.Account != "":
		return "{" + o.Kind + ": " + scalar(o.Account) + "}"
	}
	return "{" + o.Kind + ": " + scalar(o.Code) + "}"
}

func field(b *strings.Builder, indent, k, v string) {
	b.WriteString(indent + k + ": " + scalar(v) + "\n")
}

func list(b *strings.Builder, indent, k string, vs []string) {
	if len(vs) == 0 {
		return
	}
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = scalar(v)
	}
	b.WriteString(indent + k + ": [" + strings.Join(q, ", ") + "]\n")
}

// scalar renders a string as a YAML scalar: quoted whenever YAML could read it as anything else
// (PINs are text: "1234" stays a string).
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	v := strings.TrimSuffix(string(out), "\n")
	if strings.Contains(v, "\n") || v == s && needsQuotes(s) {
		return fmt.Sprintf("%q", s)
	}
	return v
}

func needsQuotes(s string) bool {
	return s == "" || strings.ContainsAny(s, ":#{}[],&*!|>'\"%@`") || strings.TrimSpace(s) != s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Files are the files WriteFiles wrote.
type Files struct{ Scenario, Persona string }

// WriteFiles writes the scenario to path and the persona to personas/ID.yaml beside it, with
// writePersona (which owns the persona format). An existing file is replaced only if fidolab
// wrote it.
func (c *Case) WriteFiles(path, source string, writePersona func(w io.Writer) error) (Files, error) {
	dir := filepath.Dir(path)
	rel := filepath.Join("personas", c.ID+".yaml")
	files := Files{Scenario: path, Persona: filepath.Join(dir, rel)}
	if err := os.MkdirAll(filepath.Join(dir, "personas"), 0o755); err != nil {
		return files, err
	}
	if err := writeOwned(files.Persona, "# fidolab persona", writePersona); err != nil {
		return files, err
	}
	err := writeOwned(path, Magic, func(w io.Writer) error { return c.WriteYAML(w, filepath.ToSlash(rel), source) })
	return files, err
}

// writeOwned creates path, or replaces it when it starts with magic (a file fidolab wrote).
func writeOwned(path, magic string, write func(io.Writer) error) error {
	if old, err := os.ReadFile(path); err == nil && !strings.HasPrefix(string(old), magic) {
		return fmt.Errorf("%s exists and is not a file fidolab wrote: choose another name or remove it", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// PersonaWriter writes the persona of the key recorded in p, named after the case, with its
// guesses marked: what WriteFiles puts beside the scenario.
func (c *Case) PersonaWriter(p *replay.Plan, source string) func(io.Writer) error {
	return func(w io.Writer) error {
		if c.group != nil {
			p = p.Only(c.group)
		}
		pr := p.Profile(source)
		pr.Name = c.ID
		if pr.Info == nil && !pr.U2F {
			_, err := fmt.Fprintf(w, "# fidolab persona: the key of %s\n# GUESS: the trace shows no answer of the key to read it from: the default persona stands in for it\nbase: default\nname: %s\n",
				nonEmpty(source, "a trace"), scalar(c.ID))
			if err == nil && (pr.Quirks.NoKeepalive || pr.Quirks.ProcessingDelayMs > 0) {
				// What the trace does show: the key kept silent on a request.
				_, err = fmt.Fprintf(w, "quirks:\n  noKeepalive: %t # observed: no keepalive while the key was silent\n  processingDelayMs: %d # observed: silent at least this long, then given up on\n",
					pr.Quirks.NoKeepalive, pr.Quirks.ProcessingDelayMs)
			}
			return err
		}
		per, guesses := pr.Persona()
		if c.Known != nil && c.Known.Key.Persona != nil {
			// A fidolab run of a catalog scenario: the field-report quirks its key had shape
			// answers a getInfo cannot show, so they come from the scenario's persona.
			k := c.Known.Key.Persona.Quirks
			q := &per.Quirks
			q.ResetRefused, q.PINTokenSingleUse, q.UPFalseRefused = k.ResetRefused, k.PINTokenSingleUse, k.UPFalseRefused
			q.BadSignatureWithHMACSecret, q.LongUserFieldsRefused = k.BadSignatureWithHMACSecret, k.LongUserFieldsRefused
		}
		return keyprofile.WritePersona(w, per, guesses, "fidolab persona: mirrors the key recorded in "+nonEmpty(source, "a trace")+
			"\nLines marked GUESS were not observed; check them against the key's datasheet.")
	}
}
