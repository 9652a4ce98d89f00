package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/transport/listener"
	"github.com/fidolab/fidolab/transport/socket"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbip"
	"github.com/fidolab/fidolab/transport/usbredir"
)

// exposeOptions are the serve flags a transport may use.
type exposeOptions struct {
	listen      string      // --listen, "" for the transport's default
	allowRemote bool        // --allow-remote
	busID       string      // --busid (usbip)
	device      *deviceOpts // --uhid, --udc, --configfs, --gadget-name (uhid, gadget)
	logger      *slog.Logger
	stderr      io.Writer
}

// exposer shows a key to hosts one way. check validates the flags before the key is opened (a
// usage error); start begins serving and returns the blocking serve loop and where it serves.
type exposer struct {
	defaultListen string
	check         func(o exposeOptions) error
	start         func(ctx context.Context, k *emulator.Key, o exposeOptions) (serve func() error, where string, err error)
	// keyEndpoint lets the transport serve several keys from one process (serve --keys N), each
	// on an endpoint of its own: it derives key n's options (1…N) from the command line's, e.g.
	// its own --listen. start is then called once per key with them. A transport without it
	// serves one key per process. See docs/serving.md, "Many keys in one process".
	keyEndpoint func(o exposeOptions, n int) (exposeOptions, error)
}

// deviceExposer is the uhid or gadget transport: the key becomes a device of this machine's kernel.
func deviceExposer(name string) exposer {
	return exposer{start: func(ctx context.Context, k *emulator.Key, o exposeOptions) (func() error, string, error) {
		return serveDevice(ctx, name, o.device, k, o.logger, o.stderr)
	}}
}

// exposers are the --transport values. Each transport registers here.
var exposers = map[string]exposer{
	"uhid":   deviceExposer("uhid"),
	"gadget": deviceExposer("gadget"),
	"socket": {
		defaultListen: "unix:fidolab.sock",
		keyEndpoint:   perKeyListen,
		start: func(ctx context.Context, k *emulator.Key, o exposeOptions) (func() error, string, error) {
			l, where, err := listen(o)
			if err != nil {
				return nil, "", err
			}
			return func() error { return socket.Serve(ctx, l, k.Device, socket.WithLogger(o.logger)) }, where, nil
		},
	},
	"usbredir": {
		defaultListen: "unix:fidolab-usbredir.sock",
		keyEndpoint:   perKeyListen, // a usb-redir socket per key, as the socket transport
		start: func(ctx context.Context, k *emulator.Key, o exposeOptions) (func() error, string, error) {
			l, where, err := listen(o)
			if err != nil {
				return nil, "", err
			}
			srv := usbredir.NewServer(usbredir.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k, Logger: o.logger})
			return func() error { return srv.Serve(ctx, l) }, "usb-redir " + where, nil
		},
	},
	"usbip": {
		defaultListen: "tcp:127.0.0.1:3240",
		check: func(o exposeOptions) error {
			if strings.HasPrefix(o.listen, "unix:") {
				return fmt.Errorf("usbip clients connect over TCP: --listen tcp:HOST:PORT")
			}
			_, err := usbip.NewServer(usbip.Config{BusID: o.busID})
			return err
		},
		start: func(ctx context.Context, k *emulator.Key, o exposeOptions) (func() error, string, error) {
			srv, err := usbip.NewServer(usbip.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k,
				BusID: o.busID, Logger: o.logger})
			if err != nil {
				return nil, "", err
			}
			l, where, err := listen(o)
			if err != nil {
				return nil, "", err
			}
			return func() error { return srv.Serve(ctx, l) }, fmt.Sprintf("USB/IP %s, bus ID %s", where, srv.BusID()), nil
		},
	},
}

func transportNames() string {
	var names []string
	for n := range exposers {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// checkListen checks o.listen's form and, for TCP, refuses an address other machines could reach
// unless --allow-remote is given (package listener's rule, applied before a state file is made).
func checkListen(o exposeOptions) error {
	network, address, err := listener.ParseAddr(o.listen)
	if err != nil {
		return fmt.Errorf("--listen: %v", err)
	}
	if network == "tcp" {
		if _, err := listener.CheckLocal(address, o.allowRemote); err != nil {
			return fmt.Errorf("--listen: %v", err)
		}
	}
	return nil
}

// listen opens o.listen, already checked by checkListen, by package listener's rules (a private
// unix socket that never takes over a live key's path; the --allow-remote warning), and returns
// where it listens.
func listen(o exposeOptions) (net.Listener, string, error) {
	l, err := listener.Listen(o.listen, listener.Options{AllowRemote: o.allowRemote, Warn: o.stderr})
	if err != nil {
		return nil, "", err
	}
	if strings.HasPrefix(o.listen, "tcp:") {
		return l, "tcp:" + l.Addr().String(), nil
	}
	return l, o.listen, nil
}
