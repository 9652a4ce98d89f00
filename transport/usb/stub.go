//go:build !gousb

package usb

import (
	"context"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// Available is false: this build has no libusb (build tag gousb).
const Available = false

// Conn is an open USB key; in this build none can be opened.
type Conn struct{}

var _ ctaphid.ReportConn = (*Conn)(nil)

// Open returns ErrNotBuilt.
func Open(Spec) (*Conn, error) { return nil, ErrNotBuilt }

// List returns ErrNotBuilt.
func List() ([]Device, error) { return nil, ErrNotBuilt }

// WriteReport returns ErrNotBuilt.
func (*Conn) WriteReport(context.Context, []byte) error { return ErrNotBuilt }

// ReadReport returns ErrNotBuilt.
func (*Conn) ReadReport(context.Context) ([]byte, error) { return nil, ErrNotBuilt }

// Close does nothing.
func (*Conn) Close() error { return nil }

// Device returns the zero Device.
func (*Conn) Device() Device { return Device{} }
