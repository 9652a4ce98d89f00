package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/control"
	"github.com/fidolab/fidolab/authenticator/fleet"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/user"
	"github.com/fidolab/fidolab/harness/trace"
	"github.com/fidolab/fidolab/transport/listener"
)

// keysConfig is fidolab serve --keys N: the serve flags, parsed.
type keysConfig struct {
	n          int
	transport  string
	exp        exposer
	eo         exposeOptions
	stateDir   string // --state DIR/, "" for keys in memory
	stateKey   string // --state-key-file
	persona    *persona.Persona
	userPolicy string
	logger     *slog.Logger
	control    string
	ctlOpts    control.Options // --control-token
	trace      traceFlags
	stderr     io.Writer
}

// perKeyListen is the keyEndpoint of the transports that listen on a socket (socket, usbredir): key n
// listens on unix:DIR/usbN.sock for --listen unix:DIR/, or on tcp:HOST:PORT+n-1 for --listen
// tcp:HOST:PORT (every key its own free port for PORT 0).
func perKeyListen(o exposeOptions, n int) (exposeOptions, error) {
	network, address, err := listener.ParseAddr(o.listen)
	if err != nil {
		return o, err
	}
	switch network {
	case "unix":
		if !strings.HasSuffix(address, "/") {
			return o, fmt.Errorf("--listen %s: with --keys, give a directory, unix:DIR/ (key N listens on DIR/usbN.sock)", o.listen)
		}
		o.listen = "unix:" + filepath.Join(address, fleet.Name(n)+".sock")
	case "tcp":
		host, port, err := splitPort(address)
		if err != nil {
			return o, fmt.Errorf("--listen %s: %v", o.listen, err)
		}
		if port != 0 {
			port += n - 1
			if port > 65535 {
				return o, fmt.Errorf("--listen %s: key %d would need port %d", o.listen, n, port)
			}
		}
		o.listen = "tcp:" + host + ":" + strconv.Itoa(port)
	}
	return o, nil
}

func splitPort(hostport string) (string, int, error) {
	i := strings.LastIndex(hostport, ":")
	if i < 0 {
		return "", 0, errors.New("no port")
	}
	port, err := strconv.Atoi(hostport[i+1:])
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", hostport[i+1:])
	}
	return hostport[:i], port, nil
}

// fdsPerKey is what one served key keeps open while idle: its state file and its listener.
const fdsPerKey = 2

// checkFileLimit refuses to start when the process may not open enough files for n keys, rather
// than failing halfway with "too many open files".
func checkFileLimit(n int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return nil // unknown: try
	}
	need := uint64(n*fdsPerKey + 64)
	if lim.Cur < need {
		return fmt.Errorf("serving %d keys needs at least %d open files, one more per connected host; the limit is %d (raise it with ulimit -n)",
			n, need, lim.Cur)
	}
	return nil
}

// serveKeys serves c.n keys from one process, each with its own endpoint, state file, persona,
// simulated user and control path (/usbN/), until interrupted.
func serveKeys(c keysConfig) error {
	if c.exp.keyEndpoint == nil {
		return usagef("--keys: the %s transport serves one key per process; --keys works with: %s", c.transport, keyTransports())
	}
	if c.n < 1 || c.n > fleet.MaxKeys {
		return usagef("--keys %d: want 1…%d", c.n, fleet.MaxKeys)
	}
	if c.stateDir != "" {
		if fi, err := os.Stat(c.stateDir); err == nil && !fi.IsDir() {
			return usagef("--state %s: with --keys, give a directory (key N keeps its state in DIR/usbN.state)", c.stateDir)
		}
	}
	eos := make([]exposeOptions, c.n)
	for i := range eos {
		var err error
		if eos[i], err = c.exp.keyEndpoint(c.eo, i+1); err != nil {
			return usagef("%v", err)
		}
	}
	if err := checkFileLimit(c.n); err != nil {
		return err
	}
	if dir, ok := strings.CutPrefix(c.eo.listen, "unix:"); ok {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--listen %s: %w", c.eo.listen, err)
		}
	}
	storeOpts, err := stateKeyOptions(c.stateKey, c.stateDir)
	if err != nil {
		return err
	}
	f, err := fleet.Open(fleet.Options{N: c.n, StateDir: c.stateDir, Persona: c.persona, Logger: c.logger,
		StoreOptions: storeOpts, User: func(int) (user.Policy, error) { return user.ParsePolicy(c.userPolicy) }})
	if err != nil {
		return err
	}
	defer f.Close()
	if pol, _ := user.ParsePolicy(c.userPolicy); pol != nil {
		if _, manual := pol.(*user.Switch); manual {
			for _, k := range f.Keys() {
				k.User.Hold(false)
			}
		}
	}
	rec, endTrace, err := c.trace.open("fidolab serve", c.stderr)
	if err != nil {
		return err
	}
	defer func() { _ = endTrace() }()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	entries := make([]control.Entry, c.n)
	serves := make([]func() error, c.n)
	for i, k := range f.Keys() {
		if rec != nil {
			k.Device.SetTap(rec.DeviceTap(trace.Source{Transport: c.transport, Endpoint: eos[i].listen,
				Device: fleet.Name(i+1) + " " + k.Persona.Name + " " + k.Persona.AAGUID.String()}))
		}
		serve, where, err := c.exp.start(ctx, k, eos[i])
		if err != nil {
			cancel()
			runAll(serves[:i])
			return fmt.Errorf("%s: %w", fleet.Name(i+1), err)
		}
		serves[i] = serve
		entries[i] = control.Entry{Name: fleet.Name(i + 1), Key: k, Endpoint: where}
	}
	errc := make(chan error, 2)
	done := make(chan struct{})
	go func() {
		if err := runAll(serves); err != nil {
			errc <- err
		}
		close(done)
	}()
	if c.control != "" {
		cl, err := listenControl(c.control)
		if err != nil {
			cancel()
			<-done
			return err
		}
		ctlDone := make(chan struct{})
		go func() {
			defer close(ctlDone)
			if err := control.ServeFleet(ctx, cl, entries, c.ctlOpts); err != nil {
				errc <- err
			}
		}()
		defer func() { cancel(); <-ctlDone }()
		auth := ""
		if c.ctlOpts.Token != nil {
			auth = " (Authorization: Bearer token required)"
		}
		where := "http://" + cl.Addr().String() + "/"
		if cl.Addr().Network() == "unix" {
			where = "unix:" + cl.Addr().String()
		}
		fmt.Fprintf(c.stderr, "fidolab: control API on %s (key N under /usbN/, every key at /state)%s\n", where, auth)
	}
	stateWhere := "in memory"
	if c.stateDir != "" {
		stateWhere = filepath.Join(c.stateDir, "usb{1…"+strconv.Itoa(c.n)+"}.state")
	}
	fmt.Fprintf(c.stderr, "fidolab: serving %d keys (persona %s, state %s) on %s … %s\n",
		c.n, f.Keys()[0].Persona.Name, stateWhere, entries[0].Endpoint, entries[c.n-1].Endpoint)
	for _, e := range entries {
		c.logger.Debug("key", "key", e.Name, "endpoint", e.Endpoint, "persona", e.Key.Persona.Name)
	}
	var runErr error
	select {
	case <-ctx.Done():
		fmt.Fprintln(c.stderr, "fidolab: shutting down")
	case runErr = <-errc:
	}
	cancel()
	select {
	case <-done:
	case <-time.After(transportStopTimeout):
		return errors.Join(runErr, fmt.Errorf("the %s transport did not stop within %v", c.transport, transportStopTimeout))
	}
	return runErr
}

// runAll runs every serve loop and returns when all have, with the first error.
func runAll(serves []func() error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, serve := range serves {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

// keyTransports lists the transports that serve several keys.
func keyTransports() string {
	var names []string
	for _, n := range strings.Split(transportNames(), ", ") {
		if exposers[n].keyEndpoint != nil {
			names = append(names, n)
		}
	}
	return strings.Join(names, ", ")
}
