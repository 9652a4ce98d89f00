package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/clock"
	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/harness/keyconn"
	"github.com/fidolab/fidolab/harness/keyprofile"
	"github.com/fidolab/fidolab/harness/replay"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/scenarios/runner"
	"github.com/fidolab/fidolab/transport/usbip"
)

// errDifferent makes `fidolab replay` exit 1 after the report said what differed.
var errDifferent = errors.New("the key answered differently from the recorded key")

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab replay", stderr)
	keySpec := fs.String("key", "", "the key to replay against: persona:NAME|FILE, socket:PATH[,control=HOST:PORT], hidraw:/dev/hidrawN, usb:VID:PID[:SERIAL]")
	asKey := fs.Bool("as-key", false, "serve a key that answers as the recorded key did, instead of replaying against one")
	caseSel := fs.String("case", "", "replay only the runner cases whose label contains this (a fidolab run trace holds many)")
	pin := fs.String("pin", "", "the key's PIN (a real or served key); the PIN a fresh or --as-key key is given (default "+replay.DefaultPIN+")")
	newPIN := fs.String("new-pin", "", "what a recorded changePIN changes the PIN to")
	setup := fs.Bool("setup", false, "first make the credentials the recorded key had and set its PIN (needs --destructive on a key that is not fresh)")
	destructive := fs.Bool("destructive", false, "allow what costs a real or served key something: set-up, setPIN, changePIN, wrong PINs (retries), reset")
	all := fs.Bool("all", false, "show every difference, not only the first")
	steps := fs.Bool("steps", false, "show every step, with what was re-derived and verified")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	timing := fs.Bool("timing", false, "--as-key: recorded answers take the time they took, with the recorded keepalives")
	personaOut := fs.String("persona-out", "", "--as-key: also write the persona derived from the trace to this file")
	sv := addServeFlags(fs)
	tf := addTraceFlags(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("replay needs one TRACE file")
	}
	if *asKey == (*keySpec != "") {
		return usagef("give --key KEY (replay against a key) or --as-key (serve the recorded key), one of them")
	}
	plan, err := readPlan(pos[0], *caseSel)
	if err != nil {
		return err
	}
	if *asKey {
		return serveAsKey(plan, pos[0], *pin, *timing, *personaOut, sv, tf, stderr)
	}
	keys, desc, err := openReplayKeys(*keySpec, stderr)
	if err != nil {
		return err
	}
	if c, ok := keys.(interface{ Close() }); ok {
		defer c.Close()
	}
	rec, endTrace, err := tf.open("fidolab replay", stderr)
	if err != nil {
		return err
	}
	o := replay.Options{PIN: *pin, NewPIN: *newPIN, Setup: *setup, Destructive: *destructive,
		OnTouch: touchPrompt(stderr)}
	if rec != nil {
		o.WrapConn = func(label string, c ctaphid.ReportConn) ctaphid.ReportConn {
			return rec.Conn(c, trace.Source{Transport: "replay", Endpoint: desc, Case: label})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := replay.Run(ctx, plan, keys, o)
	if terr := endTrace(); err == nil && terr != nil {
		err = terr
	}
	if err != nil && (res == nil || len(res.Steps) == 0) {
		return err
	}
	w := bufio.NewWriter(stdout)
	if *asJSON {
		_ = replay.WriteJSON(w, res)
	} else {
		fmt.Fprintf(w, "fidolab replay %s → %s\n", pos[0], desc)
		_ = replay.WriteText(w, res, replay.TextOptions{All: *all, Steps: *steps})
	}
	if ferr := w.Flush(); ferr != nil {
		return ferr
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		return errDifferent
	}
	return nil
}

// openReplayKeys turns --key into the keys of a replay: a fresh emulated key per case for a
// persona, the one key otherwise.
func openReplayKeys(spec string, stderr io.Writer) (replay.Keys, string, error) {
	k, err := openKeySpec(spec, stderr)
	if err != nil {
		return nil, "", err
	}
	if e, ok := k.(*keyconn.Emulated); ok {
		p := e.Key.Persona
		_ = e.Close()
		return replay.Emulated(p), "fresh in-process key(s) of persona " + p.Name, nil
	}
	return replay.One(k), k.Describe(), nil
}

// openKeySpec opens --key: persona: and socket: through package keyconn; hidraw: and usb:
// through the runner's real-key access (the same node finding, replug and inspection as fidolab
// run --key), asking the person at the terminal, when there is one, to replug or touch the key.
func openKeySpec(spec string, stderr io.Writer) (keyconn.Key, error) {
	if strings.HasPrefix(spec, "hidraw:") || strings.HasPrefix(spec, "usb:") {
		ko := runner.KeyOptions{PIN: os.Getenv("FIDOLAB_KEY_PIN")}
		if a := newTermAsker(os.Stdin, stderr); a != nil {
			ko.Ask = a
		}
		b, err := runner.Borrow(spec, ko)
		if errors.Is(err, runner.ErrUsage) {
			return nil, usagef("--key: %v", err)
		}
		return b, err
	}
	k, err := keyconn.Open(spec)
	if errors.Is(err, keyconn.ErrUsage) {
		return nil, usagef("--key: %v", err)
	}
	return k, err
}

func touchPrompt(stderr io.Writer) func() {
	last := time.Time{}
	return func() {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintln(stderr, "fidolab: touch the key")
		}
	}
}

// serveFlags are the flags of a served key (fidolab serve's, for replay --as-key).
type serveFlags struct {
	transport, listen, busID, ctl, userPolicy *string
	allowRemote                               *bool
	device                                    *deviceOpts
}

func addServeFlags(fs *flag.FlagSet) serveFlags {
	sv := serveFlags{
		transport:   fs.String("transport", "socket", "--as-key: how the key is exposed: "+transportNames()),
		listen:      fs.String("listen", "", "--as-key: unix:PATH or tcp:HOST:PORT (defaults as fidolab serve)"),
		busID:       fs.String("busid", usbip.DefaultBusID, "--as-key: the usbip bus ID"),
		ctl:         fs.String("control", "", "--as-key: control API address on loopback (off when empty)"),
		userPolicy:  fs.String("user", "yes", "--as-key: the simulated user"),
		allowRemote: fs.Bool("allow-remote", false, "--as-key: allow --listen on a non-loopback TCP address"),
	}
	sv.device = deviceFlags(fs)
	return sv
}

// serveAsKey serves a key answering as the recorded key did, until interrupted.
func serveAsKey(plan *replay.Plan, tracePath, pin string, timing bool, personaOut string, sv serveFlags, tf traceFlags, stderr io.Writer) error {
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pol, err := user.ParsePolicy(*sv.userPolicy)
	if err != nil {
		return usagef("--user: %v", err)
	}
	exp, ok := exposers[*sv.transport]
	if !ok {
		return usagef("--transport %q: want one of %s", *sv.transport, transportNames())
	}
	eo := exposeOptions{listen: *sv.listen, allowRemote: *sv.allowRemote, busID: *sv.busID, device: sv.device, logger: logger, stderr: stderr}
	if eo.listen == "" {
		eo.listen = exp.defaultListen
	}
	if eo.listen != "" {
		if err := checkListen(eo); err != nil {
			return usagef("%v", err)
		}
	}
	if exp.check != nil {
		if err := exp.check(eo); err != nil {
			return usagef("--transport %s: %v", *sv.transport, err)
		}
	}
	ak, err := replay.NewAsKey(plan, replay.AsKeyOptions{Source: "trace " + tracePath, Timing: timing,
		Log: func(s string) { fmt.Fprintln(stderr, "fidolab: as-key: "+s) }})
	if err != nil {
		return err
	}
	if personaOut != "" {
		if err := writePersonaFile(personaOut, ak.Persona, ak.Guesses, "persona of the key recorded in "+tracePath+" (fidolab replay --as-key)"); err != nil {
			return err
		}
	}
	k, err := emulator.Open(emulator.Options{Persona: ak.Persona, User: pol, Logger: logger, Intercept: ak.Intercept(clock.Real{})})
	if err != nil {
		return err
	}
	defer k.Close()
	if pin == "" {
		pin = replay.DefaultPIN
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn := k.Connect()
	hid := ctaphid.NewClient(conn)
	if _, err := hid.Init(ctx); err != nil {
		return err
	}
	lines, err := ak.Prepare(ctx, client.New(hid), pin)
	_ = conn.Close()
	if err != nil {
		return err
	}
	for _, l := range lines {
		fmt.Fprintf(stderr, "fidolab: as-key: %s\n", l)
	}
	if ak.Pre.PIN {
		fmt.Fprintf(stderr, "fidolab: as-key: the key's PIN is %s (--pin to choose it)\n", pin)
	}
	for _, g := range ak.Guesses {
		fmt.Fprintf(stderr, "fidolab: as-key: guessed %s: %s\n", g.Field, g.Why)
	}
	rec, endTrace, err := tf.open("fidolab replay --as-key", stderr)
	if err != nil {
		return err
	}
	defer func() { _ = endTrace() }()
	if rec != nil {
		k.Device.SetTap(rec.DeviceTap(trace.Source{Transport: *sv.transport, Endpoint: eo.listen,
			Device: "as-key of " + tracePath}))
	}
	serve, where, err := exp.start(ctx, k, eo)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- serve() }()
	if *sv.ctl != "" {
		cl, err := control.Listen(*sv.ctl)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: control.Handler(k), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
		defer srv.Close()
		fmt.Fprintf(stderr, "fidolab: control API on http://%s/\n", cl.Addr())
	}
	fmt.Fprintf(stderr, "fidolab: serving the key recorded in %s (persona %s, AAGUID %s) on %s\n",
		tracePath, ak.Persona.Name, ak.Persona.AAGUID, where)
	select {
	case <-ctx.Done():
		select {
		case err := <-errc:
			return err
		case <-time.After(transportStopTimeout):
			return fmt.Errorf("the %s transport did not stop within %v", *sv.transport, transportStopTimeout)
		}
	case err := <-errc:
		return err
	}
}

// personaMagic starts every persona file fidolab writes: such a file may be replaced, no other.
const personaMagic = "# fidolab persona"

// writePersonaFile writes a persona YAML with its guesses marked (a file is replaced only if
// fidolab wrote it).
func writePersonaFile(path string, p *persona.Persona, guesses []keyprofile.Guess, about string) error {
	f, err := createOutput(path, []byte(personaMagic), 0o644)
	if err != nil {
		return err
	}
	header := strings.TrimPrefix(personaMagic, "# ") + ": " + about +
		"\nLines marked GUESS were not observed; check them against the key's datasheet."
	err = keyprofile.WritePersona(f, p, guesses, header)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// readPlan reads the trace at path as a replay plan and keeps the cases sel names (all for "");
// a sel that names none is a usage error.
func readPlan(path, sel string) (*replay.Plan, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	plan, err := replay.ReadPlan(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := plan.Select(sel); err != nil {
		return nil, usagef("%v", err)
	}
	return plan, nil
}
