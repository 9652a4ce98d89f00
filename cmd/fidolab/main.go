// Command fidolab is a software FIDO2 security key and the lab around it.
//
//	fidolab run      replay the Windows FIDO2 sign-in document's cases against the Windows model
//	fidolab serve    serve an emulated key (socket, usb-redir, USB/IP, UHID or gadget transport; control API)
//	fidolab key      inspect or edit a key's state file
//	fidolab persona  list and show personas
//	fidolab compat   run real FIDO2 clients against every persona, write docs/compatibility.md
//	fidolab trace    show, export (pcapng) or import (Windows event logs) traces
//	fidolab replay   replay a trace against a key, or serve a key answering as the recorded one
//	fidolab probe    check a key against what Windows sign-in needs, run the catalog on it, mirror it as a persona
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
	"sync"
)

const usage = `fidolab — a software FIDO2 security key and the lab around it

usage:
  fidolab run     [--filter EXPR [--allow-empty]] [--catalog DIR]... [--persona NAME|FILE | --key KEY [--destructive]]
                  [--report FILE.xml|.json|.html|.md]... [--parallel N] [--ascii] [--quiet] [--list]
                  KEY: hidraw:/dev/hidrawN | usb:VID:PID[:SERIAL] | socket:PATH, then [,control=HOST:PORT|unix:PATH][,token=FILE]
                  [--trace FILE [--trace-secrets]]
  fidolab serve   [--persona NAME|FILE] [--state FILE [--state-key-file FILE]] [--transport socket|usbredir|usbip|uhid|gadget]
                  [--listen unix:PATH|tcp:127.0.0.1:PORT [--allow-remote]] [--busid 1-1] [--control 127.0.0.1:PORT [--control-token FILE]]
                  [--user POLICY] [--log LEVEL] [--trace FILE [--trace-secrets]]
                  [--keys N --listen unix:DIR/ [--state DIR/]]   N keys, each its own socket, state file and /usbN/
                  [--uhid /dev/uhid] [--udc NAME] [--configfs DIR] [--gadget-name NAME]   (uhid, gadget: Linux)
  fidolab key     info|list|delete|reset|seal --state FILE [--state-key-file FILE] [--json] ...
                  (info and list also take --state DIR/: every key of serve --keys)
  fidolab persona list|show NAME|FILE
  fidolab compat  [--out docs/compatibility.md] [--require]   run libfido2 and python-fido2 against every persona
  fidolab trace   show [--json] TRACE | pcap TRACE OUT.pcapng | import EVENTS -o TRACE   (docs/traces.md)
                  | scenario TRACE | match TRACE   (a known field failure the trace resembles)
  fidolab replay  TRACE --key KEY [--pin PIN] [--case LABEL] [--all] [--json]   replay a trace, compare the answers
  fidolab replay  TRACE --as-key [--transport T --listen ADDR] [--pin PIN]       serve a key answering as the recorded one
  fidolab probe   --key KEY | --persona NAME|FILE [--destructive] [--report FILE.html|.json]... [--persona-out FILE]
                  a vendor key against what Windows sign-in needs, then the catalog on it   (docs/probe.md)
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
	case "replay":
		err = cmdReplay(args[1:], stdout, stderr)
	case "probe":
		err = cmdProbe(args[1:], stdout, stderr)
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
	case errors.Is(err, errCasesFailed), errors.Is(err, errDifferent), errors.Is(err, errIncompatible), errors.Is(err, errNoMatch):
		return 1
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "fidolab %s: %v\n", command, err)
		return 2
	}
	if name, ok := flagError(err); ok {
		fmt.Fprintf(stderr, "fidolab %s: usage: %v (%s -h lists the flags)\n", command, err, name)
		return 2
	}
	fmt.Fprintf(stderr, "fidolab %s: %v\n", command, err)
	return 1
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

// newFlags returns the flags of the command named name ("fidolab run"). Every command makes its
// flags here, and so gets the one treatment of flag mistakes without a word: a mistake Parse finds
// (an unknown flag, a value that does not parse) is recorded in flagErrors, and exitCode makes it a
// usage error (exit 2) with one line, not the message twice around the whole flag list; -h prints
// the command's lines of the usage and its flags to out.
func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	msg := &strings.Builder{}
	fs.SetOutput(msg) // the flag package writes a failure's message here, then calls Usage
	fs.Usage = func() {
		if m := strings.TrimSpace(msg.String()); m != "" {
			flagErrors.Store(m, name)
			msg.Reset()
			return
		}
		printFlagHelp(fs, out) // -h
	}
	return fs
}

// flagErrors maps the message of every flag-parsing failure to its command's name.
var flagErrors sync.Map

// flagError reports whether err is (or wraps) a flag-parsing failure, and whose.
func flagError(err error) (string, bool) {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if name, ok := flagErrors.Load(e.Error()); ok {
			return name.(string), true
		}
	}
	return "", false
}

// printFlagHelp prints the command's lines of the usage and its flags.
func printFlagHelp(fs *flag.FlagSet, out io.Writer) {
	fmt.Fprintf(out, "usage:\n%s", commandUsage(fs.Name()))
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return
	}
	var defaults strings.Builder
	saved := fs.Output()
	fs.SetOutput(&defaults)
	fs.PrintDefaults()
	fs.SetOutput(saved)
	// The flag package shows -flag; fidolab's docs and usage write --flag (both are accepted).
	fmt.Fprint(out, "\nflags:\n"+strings.ReplaceAll("\n"+defaults.String(), "\n  -", "\n  --")[1:])
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
