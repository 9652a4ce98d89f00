package trace

import (
	"context"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
)

// DeviceTap returns a ctaphid.Tap that records each port of a device as a new source described
// by src (its Side is set to SideDevice). Install it with Device.SetTap: whatever transport
// serves the device (socket, UHID, USB/IP, usb-redir, gadget) is then recorded alike.
func (r *Recorder) DeviceTap(src Source) ctaphid.Tap {
	src.Side = SideDevice
	return deviceTap{r: r, src: src}
}

type deviceTap struct {
	r   *Recorder
	src Source
}

func (t deviceTap) OpenPort() ctaphid.PortTap { return t.r.Source(t.src) }

var _ ctaphid.PortTap = (*Stream)(nil)

// Conn wraps a host-side connection so that every report written and read on it is recorded as
// a new source described by src (its Side is set to SideHost). Closing the returned connection
// closes c and ends the source.
func (r *Recorder) Conn(c ctaphid.ReportConn, src Source) ctaphid.ReportConn {
	src.Side = SideHost
	rc := &recConn{inner: c, s: r.Source(src)}
	if tc, ok := c.(ctaphid.TimedReportConn); ok {
		// Keep telling the device's times to whoever reads, and record the key's reports at them.
		return &recTimedConn{recConn: rc, timed: tc}
	}
	return rc
}

type recTimedConn struct {
	*recConn
	timed ctaphid.TimedReportConn
}

var _ ctaphid.TimedReportConn = (*recTimedConn)(nil)

func (c *recTimedConn) ReadReportAt(ctx context.Context) ([]byte, time.Time, error) {
	r, at, err := c.timed.ReadReportAt(ctx)
	if err == nil {
		c.s.DeviceReportAt(r, at)
	}
	return r, at, err
}

func (c *recTimedConn) ReadReport(ctx context.Context) ([]byte, error) {
	r, _, err := c.ReadReportAt(ctx)
	return r, err
}

type recConn struct {
	inner ctaphid.ReportConn
	s     *Stream
}

// WriteReport records the report, then writes it: the key may answer before the write returns.
func (c *recConn) WriteReport(ctx context.Context, r []byte) error {
	c.s.HostReport(r)
	return c.inner.WriteReport(ctx, r)
}

func (c *recConn) ReadReport(ctx context.Context) ([]byte, error) {
	r, err := c.inner.ReadReport(ctx)
	if err == nil {
		c.s.DeviceReport(r)
	}
	return r, err
}

func (c *recConn) Close() error {
	err := c.inner.Close()
	c.s.Closed()
	return err
}
