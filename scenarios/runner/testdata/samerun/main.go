// Command samerun is a fixture of the hidraw guest test: it reads the JSON report of a `fidolab run
// --key …` and runs the same catalog in-process on the default persona (the persona the served key
// has), then compares every case's verdict and every step's observed outcome. It prints "same
// outcomes: …" and exits 0, or lists the differences and exits 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: samerun REPORT.json")
		os.Exit(2)
	}
	if err := run(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "samerun:", err)
		os.Exit(1)
	}
}

// outcomes renders each case as its verdict and its steps' observed outcomes.
func outcomes(r *result.Run) map[string]string {
	out := map[string]string{}
	for _, c := range r.Cases {
		var steps []string
		for _, s := range c.Steps {
			steps = append(steps, s.Action+"→"+s.Observed.String())
		}
		out[c.ID+"@"+c.Version] = string(c.Verdict) + ": " + strings.Join(steps, "; ")
	}
	return out
}

func run(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var ext result.Run
	if err := json.Unmarshal(b, &ext); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cat, err := catalog.Embedded()
	if err != nil {
		return err
	}
	p, err := persona.Builtin("default")
	if err != nil {
		return err
	}
	in, err := runner.Run(context.Background(), cat, runner.Options{Keys: runner.InProcess(p)})
	if err != nil {
		return err
	}
	got, want := outcomes(&ext), outcomes(in)
	// What the key's run left out (scenarios that need a key of their own, or an attestation root
	// the model can check only for in-process keys) is not compared.
	for _, c := range in.Cases {
		if slices.Contains(ext.LeftOut, c.ID) {
			delete(want, c.ID+"@"+c.Version)
		}
	}
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, k+": not in the report")
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s:\n  key:        %s\n  in-process: %s", k, g, w))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, k+": not run in-process")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return fmt.Errorf("%d case(s) differ:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	steps := 0
	for _, c := range ext.Cases {
		steps += len(c.Steps)
	}
	s := ext.Summary()
	fmt.Printf("same outcomes: %d cases (%d passed), %d steps, %d scenarios left out, as in-process\n",
		s.Total, s.Passed, steps, len(ext.LeftOut))
	return nil
}
