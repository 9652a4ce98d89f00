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
		start: func(ctx context.Context, k *emulator.Key, o exposeOptions) (func() error, string, error) {
			l, where, err := listen(o)
			if err != nil {
				return nil, "", err
			}
			return func() error { return socket.Serve(ctx, l, k.Device) }, where, nil
		},
	},
	"usbredir": {
		defaultListen: "unix:fidolab-usbredir.sock",
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

// checkListen refuses a TCP address other than loopback unless allowRemote is set, and then
// warns: whoever reaches the port can use the key (and read nothing but what a key says).
func checkListen(o exposeOptions) error {
	network, address, ok := strings.Cut(o.listen, ":")
	if !ok || (network != "unix" && network != "tcp") || address == "" {
		return fmt.Errorf("--listen %q: want unix:PATH or tcp:HOST:PORT", o.listen)
	}
	if network == "unix" {
		return nil
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("--listen %q: %v", o.listen, err)
	}
	if ip := net.ParseIP(host); host == "localhost" || (ip != nil && ip.IsLoopback()) {
		return nil
	}
	if !o.allowRemote {
		return fmt.Errorf("--listen %q is not a loopback address; add --allow-remote to let other machines use the key", o.listen)
	}
	fmt.Fprintf(o.stderr, "fidolab: WARNING: listening on %s: any machine that reaches it can use this key (no authentication)\n", address)
	return nil
}

// listen opens o.listen, already checked by checkListen, and returns where it listens.
func listen(o exposeOptions) (net.Listener, string, error) {
	l, err := socket.Listen(o.listen)
	if err != nil {
		return nil, "", err
	}
	if strings.HasPrefix(o.listen, "tcp:") {
		return l, "tcp:" + l.Addr().String(), nil
	}
	return l, o.listen, nil
}
