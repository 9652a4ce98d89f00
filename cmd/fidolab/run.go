package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/scenarios/catalog"
	"github.com/fidolab/fidolab/scenarios/report"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/fidolab/fidolab/scenarios/winmodel"
)

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// errCasesFailed makes `fidolab run` exit 1 without printing anything more: the report said it all.
var errCasesFailed = fmt.Errorf("some cases did not behave as the document says")

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab run", stderr)
	var catalogs, reports multiFlag
	fs.Var(&catalogs, "catalog", "a directory of your own scenario files, added to the built-in catalog (repeatable)")
	fs.Var(&reports, "report", "write a report; the extension picks the format: .xml (JUnit), .json, .html, .md (repeatable)")
	filter := fs.String("filter", "", "select cases: id substring or glob, re:REGEX, tag:a,b, windows:EXPR, !TERM; terms are ANDed")
	allowEmpty := fs.Bool("allow-empty", false, "accept a selection of no case (without it, a --filter that selects nothing is an error: a typo must not pass)")
	personaRef := fs.String("persona", "", "run every case on this persona (name or YAML file) instead of each scenario's own")
	keySpec := fs.String("key", "", "run on this key instead of an in-process one: hidraw:/dev/hidrawN, usb:VID:PID[:SERIAL] "+
		"or socket:PATH, each with an optional ,control=HOST:PORT (or unix:PATH; a socket key needs it) and ,token=FILE for a control API with a token")
	destructive := fs.Bool("destructive", false, "allow erasing a --key that is not empty (PIN, credentials); "+
		"without it such a key is refused, or you are asked on a terminal")
	parallel := fs.Int("parallel", 0, "cases at once (default: number of CPUs; an external key runs one at a time)")
	hidSlack := fs.Duration("hid-slack", 0, "with --key: wall time the Windows model allows beyond its 0.5 s silence limit "+
		"(for a key and host sharing a slow emulated machine; in-process keys are timed on their own clock)")
	ascii := fs.Bool("ascii", false, "plain ASCII output (no box drawing or check marks)")
	quiet := fs.Bool("quiet", false, "no progress display")
	list := fs.Bool("list", false, "list the selected cases without running them")
	tf := addTraceFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *personaRef != "" && *keySpec != "" {
		return usagef("give --persona or --key, not both")
	}
	if *parallel < 0 {
		return usagef("--parallel %d: want 0 (one case per CPU) or more", *parallel)
	}
	// A report that cannot be written is found now, not after the run.
	for i, path := range reports {
		if err := report.CheckPath(path); err != nil {
			return usagef("--report %v", err)
		}
		if slices.Contains(reports[:i], path) {
			return usagef("--report %s is given twice", path)
		}
	}
	if *destructive && *keySpec == "" {
		return usagef("--destructive is about a --key; in-process keys are always fresh")
	}
	cat, err := loadCatalog(catalogs)
	if err != nil {
		return err
	}
	if err := checkSelection(cat, runner.Options{Filter: *filter}, *allowEmpty); err != nil {
		return err
	}
	if *list {
		return listCases(stdout, cat, *filter)
	}

	if *hidSlack < 0 {
		return usagef("--hid-slack %v: want a duration of 0 or more", *hidSlack)
	}
	opts := runner.Options{Filter: *filter, Parallel: *parallel, Target: winmodel.New(winmodel.WithWallSlack(*hidSlack))}
	switch {
	case *keySpec != "":
		ko := runner.KeyOptions{Destructive: *destructive, PIN: os.Getenv("FIDOLAB_KEY_PIN")}
		if a := newTermAsker(os.Stdin, stderr); a != nil {
			ko.Ask = a
		}
		if opts.Keys, err = runner.ExternalKey(*keySpec, ko); err != nil {
			if errors.Is(err, runner.ErrUsage) {
				return usagef("--key: %v", err)
			}
			return fmt.Errorf("--key: %w", err)
		}
	case *personaRef != "":
		p, err := persona.Load(*personaRef)
		if err != nil {
			return err
		}
		opts.Keys = runner.InProcess(p)
	}
	if opts.Keys != nil {
		if err := checkSelection(cat, opts, *allowEmpty); err != nil {
			_ = opts.Keys.Close()
			return err
		}
	}
	var prog *report.Progress
	if !*quiet {
		opts.Progress = func(done, total int, c *result.Case) {
			if prog == nil {
				prog = report.NewProgress(stderr, total)
				prog.ASCII = *ascii
			}
			prog.Update(done, total, c)
		}
	}
	rec, endTrace, err := tf.open("fidolab run", stderr)
	if err != nil {
		return err
	}
	if rec != nil {
		transport, endpoint := "inproc", "in-process key"
		if *keySpec != "" {
			transport, endpoint = "socket", *keySpec
		}
		opts.WrapConn = func(label string, now func() time.Time, c ctaphid.ReportConn) ctaphid.ReportConn {
			return rec.Conn(c, trace.Source{Transport: transport, Endpoint: endpoint, Case: label, Now: now})
		}
		opts.Mark = rec.MarkCase
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	run, err := runner.Run(ctx, cat, opts)
	if terr := endTrace(); err == nil && terr != nil {
		err = terr
	}
	if prog != nil {
		prog.Finish()
	}
	if err != nil {
		return err
	}
	useASCII := *ascii || !utf8Locale()
	if err := report.Terminal(stdout, run, report.TerminalOptions{ASCII: useASCII, Color: report.UseColor(stdout)}); err != nil {
		return err
	}
	if len(run.LeftOut) > 0 {
		fmt.Fprintf(stdout, "left out %d scenario(s) about a key of their own, or needing an attestation root only an in-process key gives: %s\n",
			len(run.LeftOut), strings.Join(run.LeftOut, ", "))
	}
	for _, path := range reports {
		if err := report.WriteFile(path, run); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "fidolab: wrote %s\n", path)
	}
	if !run.OK() {
		return errCasesFailed
	}
	return nil
}

// checkSelection refuses a run of no case unless allowEmpty: a --filter with a typo, or a key that
// leaves out every selected scenario, would otherwise pass CI having checked nothing.
func checkSelection(cat *catalog.Catalog, opts runner.Options, allowEmpty bool) error {
	cases, leftOut, err := runner.Select(cat, opts)
	if err != nil {
		return usagef("--filter: %v", err)
	}
	if len(cases) > 0 || allowEmpty {
		return nil
	}
	if len(leftOut) > 0 {
		return usagef("nothing to run: the %d scenario(s) --filter %q selects are about a key of their own, "+
			"left out on another key (%s); add --allow-empty if that is what you want", len(leftOut), opts.Filter, strings.Join(leftOut, ", "))
	}
	return usagef("--filter %q selects none of the %d cases (fidolab run --list shows every case); "+
		"add --allow-empty if an empty selection is what you want", opts.Filter, len(cat.Cases()))
}

func loadCatalog(dirs []string) (*catalog.Catalog, error) {
	cats := []*catalog.Catalog{}
	builtin, err := catalog.Embedded()
	if err != nil {
		return nil, fmt.Errorf("built-in catalog: %w", err)
	}
	cats = append(cats, builtin)
	for _, d := range dirs {
		c, err := catalog.LoadDir(d)
		if err != nil {
			return nil, err
		}
		cats = append(cats, c)
	}
	return catalog.Merge(cats...)
}

func listCases(w io.Writer, cat *catalog.Catalog, filter string) error {
	f, err := catalog.ParseFilter(filter)
	if err != nil {
		return usagef("--filter: %v", err)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tWINDOWS\tSUPPORTED\tTITLE")
	n := 0
	for _, c := range cat.Select(f) {
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\n", c.ID, c.Version.Name, c.Supported, c.Title)
		n++
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%d cases\n", n)
	return err
}

// utf8Locale guesses whether the terminal shows UTF-8 (check marks, box drawing).
func utf8Locale() bool {
	for _, v := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if s := os.Getenv(v); s != "" {
			s = strings.ToUpper(s)
			return strings.Contains(s, "UTF-8") || strings.Contains(s, "UTF8")
		}
	}
	return false
}
