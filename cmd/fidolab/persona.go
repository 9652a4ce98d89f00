package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/fidolab/fidolab/authenticator/persona"
	"go.yaml.in/yaml/v3"
)

// personaSubcommands are the persona subcommands, for persona -h.
const personaSubcommands = `
subcommands:
  list            the built-in personas (--json for machines)
  show NAME|FILE  a persona in full, as YAML; a FILE is checked as serve and run would read it

Your own personas: docs/personas.md.
`

func cmdPersona(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, "usage:\n"+commandUsage("fidolab persona")+personaSubcommands)
		return usagef("persona needs a subcommand: list, show NAME|FILE")
	}
	sub := args[0]
	switch sub {
	case "-h", "--help", "help":
		fmt.Fprint(stderr, "usage:\n"+commandUsage("fidolab persona")+personaSubcommands)
		return flag.ErrHelp
	case "list", "show":
	default:
		return usagef("unknown persona subcommand %q (want list or show)", sub)
	}
	fs := newFlags("fidolab persona "+sub, stderr)
	var asJSON *bool
	if sub == "list" {
		asJSON = fs.Bool("json", false, "print JSON for machines")
	}
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if sub == "show" {
		if len(pos) != 1 {
			return usagef("persona show needs one NAME or FILE")
		}
		p, err := persona.Load(pos[0])
		if err != nil {
			return err
		}
		b, err := yaml.Marshal(p)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	if len(pos) != 0 {
		return usagef("persona list takes no arguments")
	}
	type row struct {
		Name        string `json:"name"`
		AAGUID      string `json:"aaguid"`
		Description string `json:"description"`
	}
	var rows []row
	for _, n := range persona.Names() {
		p, err := persona.Builtin(n)
		if err != nil {
			return err
		}
		rows = append(rows, row{p.Name, p.AAGUID.String(), p.Description})
	}
	if *asJSON {
		return printJSON(stdout, rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tAAGUID\tDESCRIPTION")
	for _, r := range rows {
		first, _, _ := strings.Cut(r.Description, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.AAGUID, first)
	}
	return tw.Flush()
}
