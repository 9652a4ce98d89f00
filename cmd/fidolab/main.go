// Command fidolab is a software FIDO2 security key and the lab around it.
//
//	fidolab run      replay the Windows FIDO2 sign-in document's cases against the Windows model
//	fidolab serve    serve an emulated key (socket, usb-redir, USB/IP, UHID or gadget transport; control API)
//	fidolab key      inspect or edit a key's state file
//	fidolab persona  list and show personas
//	fidolab compat   run real FIDO2 clients against every persona, write docs/compatibility.md
//	fidolab trace    show, export (pcapng) or import (Windows event logs) traces
//	fidolab devices  list the FIDO keys plugged into this machine (hidraw, or libusb with -tags gousb)
//	fidolab version  the version and the commit it was built from
//
// Every command-line mistake — an unknown command, subcommand or flag, a flag value out of range —
// goes through one path and exits 2 (usage); other failures exit 1. "-h" anywhere, and "fidolab
// help COMMAND", show that command's help and exit 0.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

const usage = `fidolab — a software FIDO2 security key and the lab around it

usage:
  fidolab run     [--filter EXPR [--allow-empty]] [--catalog DIR]... [--persona NAME|FILE | --key KEY [--destructive]]
                  [--report FILE.xml|.json|.html|.md]... [--parallel N] [--ascii] [--quiet] [--list]
                  KEY: hidraw:/dev/hidrawN | usb:VID:PID[:SERIAL] | socket:PATH, then [,control=HOST:PORT]
                  [--trace FILE [--trace-secrets]]
  fidolab serve   [--persona NAME|FILE] [--state FILE [--state-key-file FILE]] [--transport socket|usbredir|usbip|uhid|gadget]
                  [--listen unix:PATH|tcp:127.0.0.1:PORT [--allow-remote]] [--busid 1-1] [--control 127.0.0.1:PORT]
                  [--user POLICY] [--log LEVEL] [--trace FILE [--trace-secrets]]
                  [--uhid /dev/uhid] [--udc NAME] [--configfs DIR] [--gadget-name NAME]   (uhid, gadget: Linux)
  fidolab key     info|list|delete|reset|seal --state FILE [--state-key-file FILE] [--json] ...
  fidolab persona list|show NAME|FILE
  fidolab compat  [--out docs/compatibility.md] [--require]   run libfido2 and python-fido2 against every persona
  fidolab trace   show [--json] TRACE | pcap TRACE OUT.pcapng | import EVENTS -o TRACE   (docs/traces.md)
  fidolab devices [--json] [--all] [--usb]                     list the FIDO keys plugged in, with their --key
  fidolab version [--json]
  fidolab help    [COMMAND]

Run "fidolab help COMMAND" (or "fidolab COMMAND -h") for a command's flags. Mistakes on the command
line exit 2, other failures 1.
`

// errUsage marks a command-line mistake: the usage is printed and the exit code is 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(args[1:], stdout, stderr)
	case "key":
		err = cmdKey(args[1:], stdout, stderr)
	case "persona":
		err = cmdPersona(args[1:], stdout, stderr)
	case "compat":
		err = cmdCompat(args[1:], stdout, stderr)
	case "trace":
		err = cmdTrace(args[1:], stdout, stderr)
	case "devices":
		err = cmdDevices(args[1:], stdout, stderr)
	case "version", "--version":
		err = cmdVersion(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		return help(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "fidolab: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return exitCode(args[0], err, stderr)
}

// exitCode is the one place an error becomes an exit code: 0 for help, 2 for a usage error (the
// command line is wrong), 1 for anything else.
func exitCode(command string, err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errCasesFailed):
		return 1
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "fidolab %s: %v\n", command, err)
		return 2
	default:
		fmt.Fprintf(stderr, "fidolab %s: %v\n", command, err)
		return 1
	}
}

// help is "fidolab help [COMMAND [SUBCOMMAND]]": the overview, or what COMMAND -h shows, on stdout.
func help(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		return help(nil, stdout, stderr)
	}
	return run(append(args[:len(args):len(args)], "-h"), stdout, stdout)
}

// flagSet is a command's flags. Every mistake Parse finds (an unknown flag, a value that does not
// parse) is a usage error, exit 2; -h prints the command's usage and flags and is flag.ErrHelp.
// Each command makes its flags with newFlags, so a new command or flag gets this without a word.
type flagSet struct {
	*flag.FlagSet
	out io.Writer // where -h prints
}

// newFlags returns the flags of the command named name ("fidolab run"); -h prints to out.
func newFlags(name string, out io.Writer) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Parse reports; the flag package would print every error twice
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, out: out}
}

// Parse parses args; see flagSet.
func (f *flagSet) Parse(args []string) error {
	err := f.FlagSet.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		f.PrintHelp()
		return err
	}
	return usagef("%v (%s -h lists the flags)", err, f.Name())
}

// PrintHelp prints the command's lines of the usage and its flags.
func (f *flagSet) PrintHelp() {
	fmt.Fprintf(f.out, "usage:\n%s", commandUsage(f.Name()))
	n := 0
	f.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	var defaults strings.Builder
	f.SetOutput(&defaults)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
	// The flag package shows -flag; fidolab's docs and usage write --flag (both are accepted).
	fmt.Fprint(f.out, "\nflags:\n"+strings.ReplaceAll("\n"+defaults.String(), "\n  -", "\n  --")[1:])
}

// commandUsage returns the lines of the usage that describe command ("fidolab run", or "fidolab
// key info": its command's lines), continuation lines included.
func commandUsage(command string) string {
	words := strings.Fields(command)
	if len(words) < 2 {
		return ""
	}
	prefix := "  fidolab " + words[1] + " "
	var b strings.Builder
	in := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(line, prefix):
			in = true
		case in && strings.HasPrefix(line, "   ") && strings.TrimSpace(line) != "":
		default:
			in = false
		}
		if in {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
