package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/transport/socket"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab serve", stderr)
	personaRef := fs.String("persona", "", "persona name or YAML file (default: the state file's, else \"default\")")
	state := fs.String("state", "", "state file (created with mode 0600); empty keeps the key in memory")
	transport := fs.String("transport", "socket", "how the key is exposed: socket")
	listen := fs.String("listen", "unix:fidolab.sock", "socket address: unix:PATH or tcp:127.0.0.1:PORT")
	ctl := fs.String("control", "", "control API address on loopback, e.g. 127.0.0.1:8765 (off when empty)")
	ctlToken := fs.String("control-token", "", "file with the control API's bearer token (also env "+controlTokenEnv+"); requests without it get 401")
	userPolicy := fs.String("user", "yes", "simulated user: yes, no, timeout, delay:D[:ANSWER], script:A,B,…, manual")
	logLevel := fs.String("log", "info", "log level: debug, info, warn, error")
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
	if *transport != "socket" {
		return usagef("--transport %q: only socket is available", *transport)
	}
	ctlOpts, err := controlOptions(*ctl, *ctlToken)
	if err != nil {
		return err
	}
	k, err := emulator.Open(emulator.Options{Persona: p, StatePath: *state, User: pol, Logger: logger})
	if err != nil {
		return err
	}
	defer k.Close()
	if _, manual := pol.(*user.Switch); manual {
		k.User.Hold(false)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	l, err := socket.Listen(*listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- socket.Serve(ctx, l, k.Device) }()

	if *ctl != "" {
		cl, err := control.Listen(*ctl)
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
		fmt.Fprintf(stderr, "fidolab: control API on http://%s/%s\n", cl.Addr(), auth)
	}
	where := "in memory"
	if *state != "" {
		where = *state
	}
	fmt.Fprintf(stderr, "fidolab: serving persona %s (AAGUID %s, state %s) on %s\n",
		k.Persona.Name, k.Persona.AAGUID, where, *listen)
	_ = stdout
	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "fidolab: shutting down")
		return nil
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
