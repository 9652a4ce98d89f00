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
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/transport/listener"
	"github.com/fidolab/fidolab/transport/socket"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("fidolab serve", stderr)
	personaRef := fs.String("persona", "", "persona name or YAML file (default: the state file's, else \"default\")")
	state := fs.String("state", "", "state file (created with mode 0600); empty keeps the key in memory")
	stateKey := stateKeyFlag(fs)
	transport := fs.String("transport", "socket", "how the key is exposed: socket")
	listen := fs.String("listen", "unix:fidolab.sock", "socket address: unix:PATH or tcp:127.0.0.1:PORT")
	allowRemote := fs.Bool("allow-remote", false, "let --listen tcp: bind a non-loopback address (no authentication: anyone who reaches it uses the key)")
	ctl := fs.String("control", "", "control API address on loopback, e.g. 127.0.0.1:8765 (off when empty)")
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
	if network, addr, err := listener.ParseAddr(*listen); err == nil && network == "tcp" {
		if _, err := listener.CheckLocal(addr, *allowRemote); err != nil { // before a state file is made
			return usagef("--listen: %v", err)
		}
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
	if _, manual := pol.(*user.Switch); manual {
		k.User.Hold(false)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var lopts []socket.ListenOption
	if *allowRemote {
		lopts = append(lopts, socket.AllowRemote(stderr))
	}
	l, err := socket.Listen(*listen, lopts...)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- socket.Serve(ctx, l, k.Device, socket.WithLogger(logger)) }()

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
