package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/probe"
	"github.com/fidolab/fidolab/scenarios/report"
	"github.com/fidolab/fidolab/scenarios/result"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/fidolab/fidolab/scenarios/winmodel"
)

// errIncompatible makes `fidolab probe` exit 1 after the report said why.
var errIncompatible = errors.New("the key is not compatible with what Windows sign-in needs")

func cmdProbe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab probe", stderr)
	keySpec := fs.String("key", "", "the key to probe: hidraw:/dev/hidrawN, usb:VID:PID[:SERIAL], socket:PATH[,control=HOST:PORT]")
	personaRef := fs.String("persona", "", "probe a fresh emulated key of this persona (name or YAML file) instead")
	pin := fs.String("pin", os.Getenv("FIDOLAB_KEY_PIN"), "the key's PIN, when it has one and --destructive is not given (default $FIDOLAB_KEY_PIN)")
	destructive := fs.Bool("destructive", false, "allow the checks that erase the key: reset, a PIN, credentials, filling it (an emulated key: always)")
	noFill := fs.Bool("no-fill", false, "with --destructive, do not fill the key with credentials to measure its capacity (a real key wants a touch for each)")
	var reports, catalogs multiFlag
	fs.Var(&reports, "report", "write the report; the extension picks the format: .html, .json (repeatable)")
	fs.Var(&catalogs, "catalog", "a directory of your own scenarios, added to the built-in catalog (repeatable)")
	noCatalog := fs.Bool("no-catalog", false, "do not run the catalog on the key after the checks")
	filter := fs.String("filter", "", "run only the catalog cases this filter selects (fidolab run --filter)")
	hidSlack := fs.Duration("hid-slack", 0, "for the catalog on a --key: wall time the Windows model allows beyond its 0.5 s silence limit "+
		"(fidolab run --hid-slack: a key and host sharing a slow emulated machine)")
	personaOut := fs.String("persona-out", "", "write a persona YAML that mirrors the key, so it can be emulated without the hardware")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of text")
	ascii := fs.Bool("ascii", false, "plain ASCII marks")
	verbose := fs.Bool("verbose", false, "say what Windows needs for every check, and every detail")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if (*keySpec == "") == (*personaRef == "") {
		return usagef("give --key KEY or --persona NAME, one of them")
	}
	if *hidSlack < 0 {
		return usagef("--hid-slack %v: want a duration of 0 or more", *hidSlack)
	}
	for _, r := range reports {
		if ext := filepath.Ext(r); ext != ".html" && ext != ".json" {
			return usagef("--report %s: want a .html or .json file", r)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var (
		k     keyconn.Key
		p     *persona.Persona
		spec  = *keySpec
		err   error
		o     = probe.Options{PIN: *pin, Destructive: *destructive, Fill: *destructive && !*noFill, OnTouch: touchPrompt(stderr)}
		quiet = *asJSON
	)
	if *personaRef != "" {
		if p, err = persona.Load(*personaRef); err != nil {
			return err
		}
		// A fresh in-memory key owns nothing: every check runs. Its user touches it 800 ms after
		// being asked, as a person does, so its keepalives show (no wall time: a virtual clock).
		e, err := keyconn.NewEmulated(p, &keyconn.EmulatedOptions{User: user.Delayed{After: 800 * time.Millisecond, Answer: user.Yes}})
		if err != nil {
			return err
		}
		k, spec = e, "persona:"+p.Name
		o.Destructive, o.Fill = true, true
	} else if k, err = openKeySpec(spec, stderr); err != nil {
		return err
	}
	defer k.Close()
	o.Spec = spec
	if o.Destructive && p == nil {
		if b, ok := k.(*runner.Borrowed); ok {
			if c, err := b.Inspect(ctx, *pin); err == nil && !c.Empty() {
				fmt.Fprintf(stderr, "fidolab: --destructive: erasing what is on %s:\n  - %s\n", spec, strings.Join(c.Lines(), "\n  - "))
			}
		}
	}
	if !quiet {
		o.Progress = func(title string) { fmt.Fprintf(stderr, "fidolab: probe: %s…\n", title) }
	}
	rep, profile, err := probe.Probe(ctx, k, o)
	if err != nil {
		return err
	}
	if !*noCatalog {
		rep.Catalog = probeCatalog(ctx, spec, p, o, catalogRun{filter: *filter, dirs: catalogs, hidSlack: *hidSlack}, stderr, quiet)
		// The runner leaves the last case's PIN and accounts on the key.
		switch {
		case p != nil:
		case o.Destructive && rep.Catalog.Total > rep.Catalog.Skipped:
			rep.Left = probe.Reset(ctx, k, o)
		case rep.Catalog.Total > rep.Catalog.Skipped:
			rep.Left = "the catalog ran on the key (it was empty) and its last case left a PIN and accounts on it"
		}
	}
	if *personaOut != "" {
		mirror, guesses := profile.Persona()
		if err := writePersonaFile(*personaOut, mirror, guesses, "mirrors the key probed as "+spec+" (fidolab probe "+
			map[bool]string{true: "--destructive", false: "without --destructive: capacity and quirks partly guessed"}[o.Destructive]+")"); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "fidolab: wrote %s (persona %s, %d guesses marked GUESS)\n", *personaOut, mirror.Name, len(guesses))
	}
	for _, path := range reports {
		if err := writeProbeReport(path, rep); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "fidolab: wrote %s\n", path)
	}
	w := bufio.NewWriter(stdout)
	if *asJSON {
		err = probe.WriteJSON(w, rep)
	} else {
		err = probe.WriteText(w, rep, probe.TextOptions{ASCII: *ascii || !utf8Locale(), Verbose: *verbose})
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if strings.HasPrefix(rep.Verdict, "incompatible") || catalogFailed(rep.Catalog) {
		return errIncompatible
	}
	return nil
}

// probeCatalog runs the catalog on the probed key: a fresh emulated key per case for a persona,
// the real key (with fidolab run --key's rules: nothing erased without --destructive) otherwise.
// catalogRun is what probe's catalog run takes from the command line.
type catalogRun struct {
	filter   string
	dirs     []string
	hidSlack time.Duration
}

func probeCatalog(ctx context.Context, spec string, p *persona.Persona, o probe.Options, cr0 catalogRun, stderr io.Writer, quiet bool) *probe.CatalogResult {
	cr := &probe.CatalogResult{Key: spec}
	cat, err := loadCatalog(cr0.dirs)
	if err != nil {
		cr.Note = "not run: " + err.Error()
		return cr
	}
	ro := runner.Options{Filter: cr0.filter, Target: winmodel.New(winmodel.WithWallSlack(cr0.hidSlack))}
	if p != nil {
		ro.Keys = runner.InProcess(p)
	} else {
		ko := runner.KeyOptions{Destructive: o.Destructive, PIN: o.PIN}
		if a := newTermAsker(os.Stdin, stderr); a != nil {
			ko.Ask = a
		}
		if ro.Keys, err = runner.ExternalKey(spec, ko); err != nil {
			cr.Note = "not run: " + err.Error()
			return cr
		}
	}
	if !quiet {
		var prog *report.Progress
		ro.Progress = func(done, total int, c *result.Case) {
			if prog == nil {
				prog = report.NewProgress(stderr, total)
			}
			prog.Update(done, total, c)
		}
		defer func() {
			if prog != nil {
				prog.Finish()
			}
		}()
	}
	run, err := runner.Run(ctx, cat, ro)
	if err != nil {
		cr.Note = "not run: " + err.Error()
		return cr
	}
	s := run.Summary()
	cr.Total, cr.Passed, cr.Failed, cr.KeyIncompatible, cr.Skipped, cr.Errors = s.Total, s.Passed, s.Failed, s.KeyIncompatible, s.Skipped, s.Errors
	for _, c := range run.Cases {
		cause := c.KeyCause
		if cause == "" {
			cause = c.Error
		}
		if cause == "" && c.Verdict == result.Fail {
			for _, st := range c.Steps {
				if st.Verdict != result.Pass {
					cause = fmt.Sprintf("%s: expected %s, observed %s", st.Action, st.Expected, st.Observed)
					break
				}
			}
		}
		cr.Cases = append(cr.Cases, probe.CatalogCase{ID: c.ID, Version: c.Version, Verdict: string(c.Verdict), Cause: cause})
	}
	if len(run.LeftOut) > 0 {
		cr.Note = fmt.Sprintf("left out %d scenario(s) about a key of their own: %s", len(run.LeftOut), strings.Join(run.LeftOut, ", "))
	}
	return cr
}

func catalogFailed(cr *probe.CatalogResult) bool {
	return cr != nil && cr.Failed+cr.KeyIncompatible+cr.Errors > 0
}

func writeProbeReport(path string, r *probe.Report) error {
	magic := []byte("<!DOCTYPE html>")
	if filepath.Ext(path) == ".json" {
		magic = []byte("{\n  \"schemaVersion\"")
	}
	f, err := createOutput(path, magic, 0o644)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if filepath.Ext(path) == ".json" {
		err = probe.WriteJSON(w, r)
	} else {
		err = probe.WriteHTML(w, r)
	}
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
