package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/transport/usbip"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab serve", stderr)
	personaRef := fs.String("persona", "", "persona name or YAML file (default: the state file's, else \"default\")")
	state := fs.String("state", "", "state file (created with mode 0600); empty keeps the key in memory; with --keys, a directory")
	keys := fs.Int("keys", 0, "serve this many keys from one process, each with its own endpoint (--listen unix:DIR/), state file (--state DIR/) and control path /usbN/")
	stateKey := stateKeyFlag(fs)
	transport := fs.String("transport", "socket", "how the key is exposed: "+transportNames())
	listen := fs.String("listen", "", "unix:PATH or tcp:HOST:PORT (default: socket unix:fidolab.sock, usbredir unix:fidolab-usbredir.sock, usbip tcp:127.0.0.1:3240)")
	allowRemote := fs.Bool("allow-remote", false, "allow --listen on a non-loopback TCP address (anyone reaching it can use the key)")
	busID := fs.String("busid", usbip.DefaultBusID, "usbip: the bus ID the key is exported as")
	ctl := fs.String("control", "", "control API address on loopback, e.g. 127.0.0.1:8765 (off when empty)")
	userPolicy := fs.String("user", "yes", "simulated user: yes, no, timeout, delay:D[:ANSWER], script:A,B,…, manual")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
	dev := deviceFlags(fs)
	tf := addTraceFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usagef("--log %q: %v", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	pol, err := user.ParsePolicy(*userPolicy)
	if err != nil {
		return usagef("--user: %v", err)
	}
	var p *persona.Persona
	if *personaRef != "" {
		if p, err = persona.Load(*personaRef); err != nil {
			return err
		}
	}
	exp, ok := exposers[*transport]
	if !ok {
		return usagef("--transport %q: want one of %s", *transport, transportNames())
	}
	eo := exposeOptions{listen: *listen, allowRemote: *allowRemote, busID: *busID, device: dev, logger: logger, stderr: stderr}
	if eo.listen == "" {
		eo.listen = exp.defaultListen
		if *keys != 0 && exp.keyEndpoint != nil && strings.HasPrefix(eo.listen, "unix:") {
			eo.listen = "unix:fidolab-keys/"
		}
	}
	if eo.listen != "" {
		if err := checkListen(eo); err != nil {
			return usagef("%v", err)
		}
	}
	if exp.check != nil {
		if err := exp.check(eo); err != nil {
			return usagef("--transport %s: %v", *transport, err)
		}
	}
	if *keys != 0 {
		return serveKeys(keysConfig{n: *keys, transport: *transport, exp: exp, eo: eo, stateDir: *state,
			stateKey: *stateKey, persona: p, userPolicy: *userPolicy, logger: logger, control: *ctl, trace: tf,
			stderr: stderr})
	}
	storeOpts, err := stateKeyOptions(*stateKey, *state)
	if err != nil {
		return err
	}
	k, err := emulator.Open(emulator.Options{Persona: p, StatePath: *state, User: pol, Logger: logger, StoreOptions: storeOpts})
	if err != nil {
		return err
	}
	defer k.Close()
	// Recorded at the device, so any transport serving k.Device is traced alike.
	rec, endTrace, err := tf.open("fidolab serve", stderr)
	if err != nil {
		return err
	}
	defer func() { _ = endTrace() }()
	if rec != nil {
		k.Device.SetTap(rec.DeviceTap(trace.Source{Transport: *transport, Endpoint: eo.listen,
			Device: k.Persona.Name + " " + k.Persona.AAGUID.String()}))
	}
	if _, manual := pol.(*user.Switch); manual {
		k.User.Hold(false)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	serve, where, err := exp.start(ctx, k, eo)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- serve() }()

	if *ctl != "" {
		cl, err := control.Listen(*ctl)
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
	stateWhere := "in memory"
	if *state != "" {
		stateWhere = *state
	}
	fmt.Fprintf(stderr, "fidolab: serving persona %s (AAGUID %s, state %s) on %s\n",
		k.Persona.Name, k.Persona.AAGUID, stateWhere, where)
	_ = stdout
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "fidolab: shutting down")
		// Let the transport take the key away from its hosts before exiting: a gadget's configfs
		// tree or a UHID device must not outlive the process.
		select {
		case err := <-errc:
			return err
		case <-time.After(transportStopTimeout):
			return fmt.Errorf("the %s transport did not stop within %v", *transport, transportStopTimeout)
		}
	case err := <-errc:
		return err
	}
}
