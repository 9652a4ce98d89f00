package hidraw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/transport/hiddesc"
)

// ErrClosed is returned by a closed Conn.
var ErrClosed = errors.New("hidraw: connection closed")

// ErrGone means the key went away (unplugged) while it was open.
var ErrGone = errors.New("hidraw: the key is gone (unplugged?)")

// Info is what the kernel says of an open hidraw node (HIDIOCGRAWINFO, HIDIOCGRAWNAME).
type Info struct {
	Bus       uint16
	VendorID  uint16
	ProductID uint16
	Name      string
	Report    hiddesc.FIDOReport
}

// Conn is an open FIDO hidraw node. It implements ctaphid.ReportConn: one WriteReport and one
// ReadReport may run at the same time.
//
// The node is opened through os.OpenFile, which on Linux registers a character device with the Go
// runtime's poller and makes it non-blocking; reads and writes therefore honour deadlines, and a
// context's end interrupts a read waiting for the key (TestPollerInterruptsCharDeviceRead checks the
// mechanism on a pseudo-terminal, the guest test on a real hidraw node).
type Conn struct {
	f    *os.File
	path string
	info Info
	ids  bool // the descriptor uses report IDs: every report starts with its ID

	wmu  sync.Mutex
	wbuf []byte
	rmu  sync.Mutex
	rbuf []byte

	closeOnce sync.Once
}

var _ ctaphid.ReportConn = (*Conn)(nil)

// Open opens a hidraw node and checks, from the report descriptor the kernel holds for it, that it
// is a FIDO key with 64-byte reports: a keyboard or any other HID device is refused before a byte is
// written to it.
func Open(path string) (*Conn, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("hidraw: %w (give your user access to the key's node: see docs/transports.md, udev rule)", err)
		}
		return nil, fmt.Errorf("hidraw: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hidraw: %w", err)
	}
	if st.Mode()&fs.ModeCharDevice == 0 {
		f.Close()
		return nil, fmt.Errorf("hidraw: %s is not a character device", path)
	}
	rd, err := reportDescriptor(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hidraw: %s: reading the report descriptor: %w (is it a hidraw node?)", path, err)
	}
	info, ids, err := layout(rd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("hidraw: %s: %w", path, err)
	}
	if bus, vid, pid, err := rawInfo(f); err == nil {
		info.Bus, info.VendorID, info.ProductID = bus, vid, pid
	}
	if name, err := rawName(f); err == nil {
		info.Name = name
	}
	return newConn(f, path, info, ids), nil
}

// layout checks a descriptor describes a FIDO key whose reports CTAPHID can carry.
func layout(rd []byte) (Info, bool, error) {
	desc, err := hiddesc.Parse(rd)
	if err != nil {
		return Info{}, false, err
	}
	rep, err := desc.FIDOReports()
	if err != nil {
		return Info{}, false, err
	}
	if rep.InputSize != ctaphid.ReportSize || rep.OutputSize != ctaphid.ReportSize {
		return Info{}, false, fmt.Errorf("FIDO reports of %d/%d bytes (input/output); CTAPHID here needs %d",
			rep.InputSize, rep.OutputSize, ctaphid.ReportSize)
	}
	return Info{Report: rep}, desc.ReportIDs, nil
}

func newConn(f *os.File, path string, info Info, ids bool) *Conn {
	return &Conn{f: f, path: path, info: info, ids: ids,
		wbuf: make([]byte, 1+ctaphid.ReportSize), rbuf: make([]byte, 1+ctaphid.ReportSize+64)}
}

// Path is the node the connection was opened on.
func (c *Conn) Path() string { return c.path }

// Info is what the kernel reported when the node was opened.
func (c *Conn) Info() Info { return c.info }

// WriteReport sends one 64-byte output report. hidraw takes the report ID first, 0 for a key whose
// descriptor has none, so 65 bytes go to the kernel.
func (c *Conn) WriteReport(ctx context.Context, r []byte) error {
	if len(r) != ctaphid.ReportSize {
		return ctaphid.ErrReportSize
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf[0] = c.info.Report.ID
	copy(c.wbuf[1:], r)
	stop := deadline(ctx, c.f.SetWriteDeadline)
	defer stop()
	n, err := c.f.Write(c.wbuf)
	if err == nil && n != len(c.wbuf) {
		err = fmt.Errorf("hidraw: short write of %d bytes", n)
	}
	return c.ioError(ctx, err)
}

// ReadReport returns the next 64-byte input report. Reports of another report ID are skipped.
func (c *Conn) ReadReport(ctx context.Context) ([]byte, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	stop := deadline(ctx, c.f.SetReadDeadline)
	defer stop()
	for {
		n, err := c.f.Read(c.rbuf)
		if err != nil {
			return nil, c.ioError(ctx, err)
		}
		if n == 0 {
			return nil, c.ioError(ctx, ErrGone)
		}
		r := c.rbuf[:n]
		if c.ids {
			if r[0] != c.info.Report.ID {
				continue
			}
			r = r[1:]
		}
		if len(r) != ctaphid.ReportSize {
			return nil, fmt.Errorf("hidraw: %s sent a report of %d bytes, want %d", c.path, len(r), ctaphid.ReportSize)
		}
		return append([]byte(nil), r...), nil
	}
}

// Close closes the node.
func (c *Conn) Close() error {
	err := ErrClosed
	c.closeOnce.Do(func() { err = c.f.Close() })
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// ioError turns an I/O error into ctx's error when ctx caused it, and a vanished device into ErrGone.
func (c *Conn) ioError(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENXIO) || errors.Is(err, io.EOF) || errors.Is(err, ErrGone) {
		return fmt.Errorf("%w: %s: %v", ErrGone, c.path, err)
	}
	return fmt.Errorf("hidraw: %s: %w", c.path, err)
}

// deadline applies ctx's deadline and cancellation to one direction of the file and returns the
// cleanup, which clears the deadline again.
func deadline(ctx context.Context, set func(time.Time) error) func() {
	if d, ok := ctx.Deadline(); ok {
		_ = set(d)
	} else {
		_ = set(time.Time{})
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = set(time.Unix(1, 0))
		close(fired)
	})
	return func() {
		if !stop() {
			<-fired // a late past deadline must not land on the next call
		}
		_ = set(time.Time{})
	}
}
