package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/transport/gadget"
	"github.com/fidolab/fidolab/transport/uhid"
	"github.com/fidolab/fidolab/transport/usbdev"
)

// deviceOpts are the flags of the transports that make the key a device of this machine's kernel.
type deviceOpts struct {
	uhidPath string
	udc      string
	configfs string
	gadget   string
}

func deviceFlags(fs *flag.FlagSet) *deviceOpts {
	o := &deviceOpts{}
	fs.StringVar(&o.uhidPath, "uhid", uhid.DefaultPath, "UHID device (--transport uhid)")
	fs.StringVar(&o.udc, "udc", "", "USB device controller to bind, from /sys/class/udc (--transport gadget; default: the only one)")
	fs.StringVar(&o.configfs, "configfs", gadget.DefaultConfigfs, "configfs mount point (--transport gadget)")
	fs.StringVar(&o.gadget, "gadget-name", "", "gadget directory under usb_gadget/ (--transport gadget; default fidolab-PID)")
	return o
}

// serveDevice prepares the uhid or gadget transport for k, following the key's plug state. It
// returns the serve loop (it returns once ctx has ended and the device is gone from the host) and
// where the key is.
func serveDevice(ctx context.Context, transport string, o *deviceOpts, k *emulator.Key, logger *slog.Logger,
	stderr io.Writer) (func() error, string, error) {
	id := usbdev.FromPersona(k.Persona.HID)
	start := time.Now()
	switch transport {
	case "uhid":
		u := uhid.New(k.Device, uhid.Config{Identity: id, Path: o.uhidPath, Logger: logger,
			OnReady: func(node string, sinceCreate time.Duration) {
				fmt.Fprintf(stderr, "fidolab: uhid: key is %s (ready %v after start, %v after UHID_CREATE2)\n",
					node, time.Since(start).Round(10*time.Microsecond), sinceCreate.Round(10*time.Microsecond))
			}})
		follow(k, u.SetPlugged, logger)
		return func() error { return u.Run(ctx) }, fmt.Sprintf("UHID %s (vid:pid %04x:%04x)", o.uhidPath, id.VendorID, id.ProductID), nil
	case "gadget":
		g, err := gadget.New(k.Device, gadget.Config{Identity: id, Configfs: o.configfs, UDC: o.udc, Name: o.gadget,
			Logger: logger, OnReady: func(hidg string) {
				fmt.Fprintf(stderr, "fidolab: gadget: bound, key speaks on %s (%v after start)\n",
					hidg, time.Since(start).Round(10*time.Microsecond))
			}})
		if err != nil {
			return nil, "", err
		}
		follow(k, g.SetPlugged, logger)
		return func() error { return g.Run(ctx) }, fmt.Sprintf("USB gadget %s (vid:pid %04x:%04x)", g.Dir(), id.VendorID, id.ProductID), nil
	}
	return nil, "", usagef("--transport %q", transport)
}

// transportStopTimeout bounds the wait for a transport to clean up at shutdown.
const transportStopTimeout = 10 * time.Second

// follow makes the transport show the key's unplug and replug (control API, faults) to the host.
func follow(k *emulator.Key, set func(bool) error, logger *slog.Logger) {
	_ = set(k.Plugged())
	k.WatchPlug(func(on bool) {
		if err := set(on); err != nil {
			logger.Error("plug state not shown to the host", "plugged", on, "err", err)
		}
	})
}
