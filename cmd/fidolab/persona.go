package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/fidolab/fidolab/authenticator/persona"
	"go.yaml.in/yaml/v3"
)

func cmdPersona(args []string, stdout, _ io.Writer) error {
	if len(args) == 0 {
		return usagef("persona needs a subcommand: list, show NAME")
	}
	switch args[0] {
	case "list":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tAAGUID\tDESCRIPTION")
		for _, n := range persona.Names() {
			p, err := persona.Builtin(n)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, p.AAGUID, p.Description)
		}
		return tw.Flush()
	case "show":
		if len(args) != 2 {
			return usagef("persona show NAME|FILE")
		}
		p, err := persona.Load(args[1])
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
	return usagef("unknown persona subcommand %q", args[0])
}
