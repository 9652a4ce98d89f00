package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/fidolab/fidolab/authenticator/userfile"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/harness/trace/pcapng"
	"github.com/fidolab/fidolab/harness/trace/winevent"
)

const traceUsage = `usage:
  fidolab trace show [--json] [--reports] TRACE            a readable transcript (--json: one JSON document)
  fidolab trace pcap [--lua OUT.lua] TRACE OUT.pcapng      pcapng (USB, usbmon) for Wireshark and tshark
  fidolab trace import [--process PID=NAME]... [--trace-secrets] EVENTS -o TRACE
                                                           a Windows WebAuthN event log (.evtx or XML) as a trace
  fidolab trace scenario [--case LABEL] [--windows V] [-o FILE] TRACE
                                                           a catalog scenario (and the key's persona) reproducing the trace
  fidolab trace match [--json] [--catalog DIR]... TRACE    the known field failures the trace resembles, and why
                                                           (exit 0: some match, 1: none, 2: usage)
`

func cmdTrace(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, traceUsage)
		return usagef("trace needs show, pcap, import, scenario or match")
	}
	switch args[0] {
	case "show":
		return traceShow(args[1:], stdout, stderr)
	case "pcap":
		return tracePcap(args[1:], stderr)
	case "import":
		return traceImport(args[1:], stdout, stderr)
	case "scenario":
		return traceScenario(args[1:], stdout, stderr)
	case "match":
		return traceMatch(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stderr, traceUsage)
		return flag.ErrHelp
	}
	fmt.Fprint(stderr, traceUsage)
	return usagef("unknown trace command %q", args[0])
}

// parseInterspersed parses flags that may come before or after the positional arguments
// ("trace import EVENTS -o TRACE"), and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func openTraceFile(path string) (*trace.Reader, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	r, err := trace.NewReader(bufio.NewReader(f))
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, f, nil
}

func traceShow(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab trace show", stderr)
	asJSON := fs.Bool("json", false, "print one JSON document (header, sources, exchanges, events) instead of text")
	reports := fs.Bool("reports", false, "list every raw CTAPHID report too")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace show needs one TRACE file")
	}
	r, f, err := openTraceFile(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriter(stdout)
	if *asJSON {
		err = trace.ShowJSON(w, r)
	} else {
		err = trace.Show(w, r, trace.ShowOptions{Reports: *reports})
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	return nil
}

func tracePcap(args []string, stderr io.Writer) error {
	fs := newFlags("fidolab trace pcap", stderr)
	lua := fs.String("lua", "", "also write a Wireshark Lua dissector naming CTAPHID and CTAP commands to this file")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return usagef("trace pcap needs TRACE and OUT.pcapng")
	}
	r, f, err := openTraceFile(pos[0])
	if err != nil {
		return err
	}
	defer f.Close()
	out, err := createOutput(pos[1], []byte{0x0A, 0x0D, 0x0D, 0x0A}, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	st, err := pcapng.Export(w, r, pcapng.Options{})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	if *lua != "" {
		lf, err := createOutput(*lua, []byte("-- CTAPHID and CTAP names"), 0o644)
		if err != nil {
			return err
		}
		_, err = lf.Write(pcapng.Dissector())
		if cerr := lf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "fidolab: wrote %s: open the capture with wireshark -X lua_script:%s\n", *lua, *lua)
	}
	fmt.Fprintf(stderr, "fidolab: wrote %s: %d packets, %d CTAPHID reports from %d key(s)", pos[1], st.Packets, st.Reports, st.Devices)
	if st.Synthesized > 0 {
		fmt.Fprintf(stderr, " (%d reports framed from event-log messages)", st.Synthesized)
	}
	fmt.Fprintln(stderr)
	return nil
}

// maxEventsFile bounds an event log read by trace import (it is parsed in memory). The WebAuthN
// channel's log is 1 MiB by default.
const maxEventsFile = 256 << 20

// processFlag collects --process PID=NAME.
type processFlag map[int]string

func (p processFlag) String() string { return "" }
func (p processFlag) Set(v string) error {
	pid, name, ok := strings.Cut(v, "=")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil || name == "" {
		return fmt.Errorf("want PID=NAME, e.g. 1320=LogonUI.exe")
	}
	p[n] = name
	return nil
}

func traceImport(args []string, stdout, stderr io.Writer) error {
	fl := newFlags("fidolab trace import", stderr)
	out := fl.String("o", "", "the trace to write (default: standard output)")
	secrets := fl.Bool("trace-secrets", false, "keep PIN ciphertexts, pinUvAuthParam, tokens and hmac-secret salts in the trace (redacted by default)")
	procs := processFlag{}
	fl.Var(procs, "process", "name a process of the log: PID=NAME (repeatable); others are inferred and marked so")
	pos, err := parseInterspersed(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("trace import needs one EVENTS file (.evtx, or XML from wevtutil qe … /f:xml)")
	}
	data, err := userfile.Read(pos[0], maxEventsFile)
	if errors.Is(err, userfile.ErrTooLarge) {
		return fmt.Errorf("%w: export only the WebAuthN channel (wevtutil epl Microsoft-Windows-WebAuthN/Operational FILE)", err)
	}
	if err != nil {
		return err
	}
	events, perr := winevent.Parse(data)
	if perr != nil && len(events) == 0 {
		return fmt.Errorf("%s: %w", pos[0], perr)
	}
	if perr != nil {
		fmt.Fprintf(stderr, "fidolab: %s: %v; importing the %d events before it\n", pos[0], perr, len(events))
	}
	if *secrets {
		warnSecrets(stderr)
	}
	var w io.Writer = stdout
	var f *os.File
	if *out != "" && *out != "-" {
		mode := fs.FileMode(0o644)
		if *secrets {
			mode = 0o600
		}
		if f, err = createOutput(*out, []byte(`{"format":"fidolab-trace"`), mode); err != nil {
			return err
		}
		w = f
	}
	bw := bufio.NewWriter(w)
	st, err := winevent.Import(events, bw, winevent.Options{KeepSecrets: *secrets, Processes: procs, Comment: "imported from " + pos[0]})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return err
	}
	dest := *out
	if dest == "" || dest == "-" {
		dest = "standard output"
	}
	fmt.Fprintf(stderr, "fidolab: imported %d events (%d operations, %d CTAP exchanges) to %s\n", st.Events, st.Transactions, st.Exchanges, dest)
	if len(st.Unknown) > 0 || st.Foreign > 0 {
		var ids []int
		for id := range st.Unknown {
			ids = append(ids, id)
		}
		sort.Ints(ids)
		var parts []string
		for _, id := range ids {
			parts = append(parts, fmt.Sprintf("%d ×%d", id, st.Unknown[id]))
		}
		if st.Foreign > 0 {
			parts = append(parts, fmt.Sprintf("%d of other providers", st.Foreign))
		}
		fmt.Fprintf(stderr, "fidolab: events fidolab does not understand, kept in the trace as they are: %s\n", strings.Join(parts, ", "))
	}
	return nil
}

func warnSecrets(stderr io.Writer) {
	fmt.Fprintln(stderr, "fidolab: WARNING: --trace-secrets keeps PIN ciphertexts, pinUvAuthParam, PIN tokens, "+
		"hmac-secret salts and outputs and largeBlobKeys in the trace: treat it as key material and do not attach it to a bug report")
}

// createOutput creates path for writing. An existing file is replaced only if it already is
// what we write (it starts with magic): a user's other files are never overwritten.
func createOutput(path string, magic []byte, mode fs.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	old, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, len(magic))
	_, rerr := io.ReadFull(old, head)
	old.Close()
	if rerr != nil || !bytes.Equal(head, magic) {
		return nil, fmt.Errorf("%s exists and is not a file fidolab wrote: choose another name or remove it", path)
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, mode)
}

// traceFlags are the --trace flags of serve and run.
type traceFlags struct {
	path    *string
	secrets *bool
}

func addTraceFlags(fs *flag.FlagSet) traceFlags {
	return traceFlags{
		path:    fs.String("trace", "", "record every CTAPHID report and decoded CTAP exchange into this trace file (docs/traces.md)"),
		secrets: fs.Bool("trace-secrets", false, "keep secrets in the trace (redacted by default)"),
	}
}

// open starts a recorder on the --trace file, or returns nil when none was asked for. The
// returned function ends the trace and closes the file.
func (t traceFlags) open(tool string, stderr io.Writer) (*trace.Recorder, func() error, error) {
	if *t.path == "" {
		if *t.secrets {
			return nil, nil, usagef("--trace-secrets needs --trace FILE")
		}
		return nil, func() error { return nil }, nil
	}
	mode := fs.FileMode(0o644)
	if *t.secrets {
		warnSecrets(stderr)
		mode = 0o600
	}
	f, err := createOutput(*t.path, []byte(`{"format":"fidolab-trace"`), mode)
	if err != nil {
		return nil, nil, err
	}
	rec, err := trace.NewRecorder(f, trace.Options{KeepSecrets: *t.secrets, Tool: tool})
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return rec, func() error {
		err := rec.Close()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			fmt.Fprintf(stderr, "fidolab: wrote trace %s\n", *t.path)
		}
		return err
	}, nil
}
