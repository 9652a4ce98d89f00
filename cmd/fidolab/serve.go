package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	"github.com/fidolab/fidolab/transport/listener"
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
	ctl := fs.String("control", "", "control API: 127.0.0.1:PORT on loopback, or unix:PATH (a 0600 socket) (off when empty)")
	ctlToken := fs.String("control-token", "", "file with the control API's bearer token (also env "+controlTokenEnv+"); requests without it get 401")
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
	ctlOpts, err := controlOptions(*ctl, *ctlToken)
	if err != nil {
		return err
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
			stateKey: *stateKey, persona: p, userPolicy: *userPolicy, logger: logger, control: *ctl, ctlOpts: ctlOpts, trace: tf,
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
		cl, err := listenControl(*ctl)
		if err != nil {
			return err
		}
		go func() {
			if err := control.Serve(ctx, cl, k, ctlOpts); err != nil {
				errc <- err
			}
		}()
		auth := ""
		if ctlOpts.Token != nil {
			auth = " (Authorization: Bearer token required)"
		}
		if cl.Addr().Network() == "unix" {
			fmt.Fprintf(stderr, "fidolab: control API on unix:%s (curl --unix-socket %s http://localhost/)%s\n", cl.Addr(), cl.Addr(), auth)
		} else {
			fmt.Fprintf(stderr, "fidolab: control API on http://%s/%s\n", cl.Addr(), auth)
		}
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

// controlTokenEnv names the control API's token file when --control-token is not given.
const controlTokenEnv = "FIDOLAB_CONTROL_TOKEN_FILE"

// controlOptions reads the control API's token (--control-token, else the environment) before
// anything is created, so a bad token file leaves no state file behind.
func controlOptions(addr, tokenFile string) (control.Options, error) {
	var o control.Options
	if tokenFile == "" {
		tokenFile = os.Getenv(controlTokenEnv)
	} else if addr == "" {
		return o, usagef("--control-token needs --control")
	}
	if tokenFile == "" || addr == "" {
		return o, nil
	}
	tok, err := control.ReadTokenFile(tokenFile)
	if err != nil {
		return o, err
	}
	o.Token = tok
	return o, nil
}

// listenControl opens the control API's listener: a loopback TCP address, or a unix socket that
// is private (0600) from the moment it exists and never takes over a live path (package listener).
func listenControl(addr string) (net.Listener, error) {
	if strings.HasPrefix(addr, "unix:") {
		return listener.Listen(addr, listener.Options{What: "control API"})
	}
	return control.Listen(addr)
}
