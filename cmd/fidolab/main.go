// Command fidolab is a software FIDO2 security key and the lab around it.
//
//	fidolab run      replay the Windows FIDO2 sign-in document's cases against the Windows model
//	fidolab serve    serve an emulated key (socket, usb-redir, USB/IP, UHID or gadget transport; control API)
//	fidolab key      inspect or edit a key's state file
//	fidolab persona  list and show personas
//	fidolab compat   run real FIDO2 clients against every persona, write docs/compatibility.md
//	fidolab trace    show, export (pcapng) or import (Windows event logs) traces
//	fidolab devices  list the FIDO keys plugged into this machine (hidraw, or libusb with -tags gousb)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `fidolab — a software FIDO2 security key and the lab around it

usage:
  fidolab run     [--filter EXPR] [--catalog DIR]... [--persona NAME|FILE | --key KEY [--destructive]]
                  [--report FILE.xml|.json|.html|.md]... [--parallel N] [--ascii] [--quiet] [--list]
                  KEY: hidraw:/dev/hidrawN | usb:VID:PID[:SERIAL] | socket:PATH, then [,control=HOST:PORT]
                  [--trace FILE [--trace-secrets]]
  fidolab serve   [--persona NAME|FILE] [--state FILE [--state-key-file FILE]] [--transport socket|usbredir|usbip|uhid|gadget]
                  [--listen unix:PATH|tcp:127.0.0.1:PORT [--allow-remote]] [--busid 1-1] [--control 127.0.0.1:PORT]
                  [--user POLICY] [--log LEVEL] [--trace FILE [--trace-secrets]]
                  [--keys N --listen unix:DIR/ [--state DIR/]]   N keys, each its own socket, state file and /usbN/
                  [--uhid /dev/uhid] [--udc NAME] [--configfs DIR] [--gadget-name NAME]   (uhid, gadget: Linux)
  fidolab key     info|list|delete|reset|seal --state FILE [--state-key-file FILE] [--json] ...
                  (info and list also take --state DIR/: every key of serve --keys)
  fidolab persona list|show NAME|FILE
  fidolab compat  [--out docs/compatibility.md] [--require]   run libfido2 and python-fido2 against every persona
  fidolab trace   show [--json] TRACE | pcap TRACE OUT.pcapng | import EVENTS -o TRACE   (docs/traces.md)
  fidolab devices [--json] [--all] [--usb]                     list the FIDO keys plugged in, with their --key
  fidolab help

Run "fidolab COMMAND -h" for a command's flags.
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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "fidolab: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errCasesFailed):
		return 1
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "fidolab %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "fidolab %s: %v\n", args[0], err)
		return 1
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, a...))
}
