package ctaphid

// Tap observes the reports of every port of a Device, in both directions, without changing
// them: the hook behind traces (harness/trace). Every device-side transport serves a Device
// through Open and Port.Input, so a tap set on the Device records any transport alike.
type Tap interface {
	// OpenPort is called by Device.Open for each new port; the PortTap it returns (nil for
	// none) sees that port's reports.
	OpenPort() PortTap
}

// PortTap observes one port. Its methods are called on the goroutines that move reports, so
// they must return quickly, must not keep the report slice, and must not call into the Device
// or the Port.
type PortTap interface {
	// HostReport sees every write of the host (Port.Input), before the device handles it,
	// whatever its size.
	HostReport(r []byte)
	// DeviceReport sees every report the device sends to the host, before the host gets it.
	DeviceReport(r []byte)
	// Describe receives what the transport knows of the host (Port.Describe).
	Describe(who string)
	// Closed is called once, when the port closes.
	Closed()
}

type tapBox struct{ t Tap }

// SetTap starts observing the ports opened from now on with t; nil stops observing new ports.
// Ports already open keep the tap they had.
func (d *Device) SetTap(t Tap) {
	if t == nil {
		d.tap.Store(nil)
		return
	}
	d.tap.Store(&tapBox{t: t})
}

func (d *Device) openTap() PortTap {
	if b := d.tap.Load(); b != nil {
		return b.t.OpenPort()
	}
	return nil
}

// Describe tells the port's tap who the host is (a peer address, a process), for traces. A
// transport calls it once after Open when it knows; without a tap it does nothing.
func (p *Port) Describe(who string) {
	if p.tap != nil {
		p.tap.Describe(who)
	}
}

func (p *Port) tapInput(r []byte) {
	if p.tap != nil {
		p.tap.HostReport(r)
	}
}

func (p *Port) tapOutput(r []byte) {
	if p.tap != nil {
		p.tap.DeviceReport(r)
	}
}

func (p *Port) tapClosed() {
	if p.tap != nil {
		p.tap.Closed()
	}
}
