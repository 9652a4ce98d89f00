package runner

import (
	"context"
	"fmt"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/client"
	"github.com/fidolab/fidolab/transport/usb"
)

// Borrowed is an external key opened for a tool other than the runner (fidolab replay, fidolab
// probe): the same ways in as ExternalKey (hidraw, usb, a served key), the same replug (its control
// API or a person at the terminal) and the same inspection of what an erase would cost — but no
// reset: what is on the key stays there unless the tool, with the user's permission, erases it.
type Borrowed struct {
	f *realFactory
}

// Borrow opens the external key of spec (ExternalKey's forms; a socket key needs no control API
// here) without touching what is on it.
func Borrow(spec string, opts KeyOptions) (*Borrowed, error) {
	f, err := newRealFactory(spec, opts, false)
	if err != nil {
		return nil, err
	}
	return &Borrowed{f: f}, nil
}

// Conn opens a connection, waiting a little for a key that is coming back from a replug.
func (b *Borrowed) Conn(ctx context.Context) (ctaphid.ReportConn, error) { return b.f.dial(ctx) }

// Replug power-cycles the key: through its control API, or by asking the person to replug it. A
// key nobody can replug returns a *SkipError.
func (b *Borrowed) Replug(ctx context.Context) error { return b.f.power.cycle(ctx, b.f.dev) }

// CanReplug reports whether Replug needs nobody (a control API).
func (b *Borrowed) CanReplug() bool { return b.f.power.unattended() }

// CanAskReplug reports whether Replug works at all: a control API or a person at the terminal.
func (b *Borrowed) CanAskReplug() bool {
	_, none := b.f.power.(noPower)
	return !none
}

// Describe names the key (its node and model once found).
func (b *Borrowed) Describe() string { return b.f.dev.describe() }

// Close does nothing: the key is not ours.
func (b *Borrowed) Close() error { return nil }

// Identity is the key's USB identity as hidraw or libusb report it; ok is false when unknown (a
// served key, or a key not found yet).
func (b *Borrowed) Identity() (persona.HID, bool) {
	switch d := b.f.dev.(type) {
	case *hidrawDevice:
		dev, err := d.locate()
		if err != nil {
			return persona.HID{}, false
		}
		// HID_NAME is "manufacturer product" for USB keys; the product alone is not told apart.
		return persona.HID{VendorID: dev.VendorID, ProductID: dev.ProductID, Product: dev.Product, Serial: dev.Serial}, true
	case *usbDevice:
		devs, err := usb.List()
		if err != nil {
			return persona.HID{}, false
		}
		for _, o := range devs {
			if o.VendorID == d.spec.Vendor && o.ProductID == d.spec.Product && (d.spec.Serial == "" || o.Serial == d.spec.Serial) {
				return persona.HID{VendorID: o.VendorID, ProductID: o.ProductID, Manufacturer: o.Manufacturer, Product: o.Product, Serial: o.Serial}, true
			}
		}
	}
	return persona.HID{}, false
}

// Inspect says what an authenticatorReset would erase from the key (the destructive guard's
// inspection: the PIN, its credentials as far as they can be listed, large-blob data).
func (b *Borrowed) Inspect(ctx context.Context, pin string) (*Contents, error) {
	conn, err := b.f.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	hid := ctaphid.NewClient(conn)
	if _, err := hid.Init(ctx); err != nil {
		return nil, fmt.Errorf("key %s: CTAPHID_INIT: %w", b.f.spec, err)
	}
	return Inspect(ctx, client.New(hid), pin)
}
