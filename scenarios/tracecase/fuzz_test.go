package tracecase

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/harness/trace/winevent"
	"github.com/fidolab/fidolab/scenarios/catalog"
)

// FuzzInfer reads any trace as a case; whatever it infers must write a scenario the catalog loads
// and a persona that loads: a field report never yields a file fidolab run refuses.
func FuzzInfer(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("..", "..", "harness", "trace", "testdata", "session.trace.jsonl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, name := range []string{"logonui-signin.xml", "browser-registration.xml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "harness", "trace", "winevent", "testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		events, err := winevent.Parse(data)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := winevent.Import(events, &buf, winevent.Options{}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Add([]byte(`{"format":"fidolab-trace","version":1,"created":"2026-01-01T00:00:00Z","tool":"fidolab run","secrets":false}
{"type":"mark","t":"2026-01-01T00:00:00Z","case":"user-wrong-pin@11-24H2","text":"set-up: register · account alice, PIN typed"}
{"type":"mark","t":"2026-01-01T00:00:00Z","case":"user-wrong-pin@11-24H2","text":"set-up observed: registered as alice"}
{"type":"mark","t":"2026-01-01T00:00:00Z","case":"user-wrong-pin@11-24H2","text":"step 1: lock-screen-sign-in · PIN typed"}
{"type":"mark","t":"2026-01-01T00:00:00Z","case":"user-wrong-pin@11-24H2","text":"step 1 observed: error pin-invalid"}
{"type":"end","t":"2026-01-01T00:00:00Z","records":4}
`))
	cat, err := catalog.Embedded()
	if err != nil {
		f.Fatal(err)
	}
	builtin := func(string) (*persona.Persona, error) { return persona.Builtin("default") }
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := replay.ReadPlan(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, g := range p.Groups {
			c, err := Infer(p, g, Options{Catalog: cat})
			if err != nil {
				continue
			}
			var sc, pe bytes.Buffer
			if err := c.WriteYAML(&sc, "personas/x.yaml", "fuzz"); err != nil {
				t.Fatal(err)
			}
			if _, err := catalog.Parse(sc.Bytes(), "x.yaml", builtin); err != nil {
				t.Fatalf("written scenario does not load: %v\n%s", err, sc.Bytes())
			}
			if err := c.PersonaWriter(p, "fuzz")(&pe); err != nil {
				t.Fatal(err)
			}
			if _, err := persona.Parse(pe.Bytes(), "x.yaml"); err != nil {
				t.Fatalf("written persona does not load: %v\n%s", err, pe.Bytes())
			}
		}
	})
}
