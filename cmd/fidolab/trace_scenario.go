package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fidolab/fidolab/scenarios/tracecase"
)

func traceScenario(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab trace scenario", stderr)
	out := fs.String("o", "", "the scenario file to write; the key's persona goes to personas/ID.yaml beside it (default: the scenario on standard output)")
	caseSel := fs.String("case", "", "the runner case to write, for a fidolab run trace of several")
	windows := fs.String("windows", "", "the Windows version to write instead of the one inferred (e.g. 11-23H2)")
	id := fs.String("id", "", "the scenario id to write")
	var catalogs multiFlag
	fs.Var(&catalogs, "catalog", "a directory of your own scenarios where a run trace's case is looked up (repeatable)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace scenario needs one TRACE file")
	}
	plan, err := readPlan(pos[0], *caseSel)
	if err != nil {
		return err
	}
	if len(plan.Groups) != 1 {
		var labels []string
		for _, g := range plan.Groups {
			labels = append(labels, g.Label)
		}
		return usagef("the trace holds %d cases; choose one with --case (%s)", len(plan.Groups), strings.Join(labels, ", "))
	}
	cat, err := loadCatalog(catalogs)
	if err != nil {
		return err
	}
	c, err := tracecase.Infer(plan, plan.Groups[0], tracecase.Options{Catalog: cat, Windows: *windows, ID: *id, Source: pos[0]})
	if err != nil {
		return err
	}
	if *out == "" {
		fmt.Fprintf(stderr, "fidolab: the scenario names personas/%s.yaml: give -o FILE to write that persona beside it\n", c.ID)
		return c.WriteYAML(stdout, "personas/"+c.ID+".yaml", pos[0])
	}
	files, err := c.WriteFiles(*out, pos[0], c.PersonaWriter(plan, pos[0]))
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "fidolab: wrote %s and %s (%d steps, %d guesses marked GUESS)\n", files.Scenario, files.Persona, len(c.Steps), len(c.Guesses))
	return nil
}
