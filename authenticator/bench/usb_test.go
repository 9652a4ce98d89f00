package bench

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/usbdev"
	"github.com/fidolab/fidolab/transport/usbip"
	"github.com/fidolab/fidolab/transport/usbip/usbiptest"
	"github.com/fidolab/fidolab/transport/usbredir"
	"github.com/fidolab/fidolab/transport/usbredir/usbredirtest"
)

// serveIn runs serve until the benchmark ends and fails it if serve returned an error.
func serveIn(b *testing.B, serve func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
}

// usbredirConn serves the key with the usb-redir server on a Unix socket (as QEMU's chardev
// reaches it) and attaches a minimal usb-guest: every CTAPHID report is a usbredir interrupt
// packet, each OUT one acknowledged by the server.
func usbredirConn(b *testing.B) func(*emulator.Key) ctaphid.ReportConn {
	return func(k *emulator.Key) ctaphid.ReportConn {
		path := filepath.Join(b.TempDir(), "redir.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			b.Fatal(err)
		}
		srv := usbredir.NewServer(usbredir.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k})
		serveIn(b, func(ctx context.Context) error { return srv.Serve(ctx, l) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g, err := usbredirtest.Dial(ctx, "unix", path)
		if err != nil {
			b.Fatal(err)
		}
		return g
	}
}

// usbipConn exports the key with the USB/IP server on TCP loopback and imports it with a minimal
// client that keeps one interrupt IN URB pending, as Linux's usbhid over vhci-hcd does.
func usbipConn(b *testing.B) func(*emulator.Key) ctaphid.ReportConn {
	return func(k *emulator.Key) ctaphid.ReportConn {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv, err := usbip.NewServer(usbip.Config{Device: k.Device, USB: usbdev.NewFromPersona(k.Persona.HID), Plug: k})
		if err != nil {
			b.Fatal(err)
		}
		serveIn(b, func(ctx context.Context) error { return srv.Serve(ctx, l) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := usbiptest.Dial(ctx, "tcp", l.Addr().String(), usbip.DefaultBusID)
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
}
