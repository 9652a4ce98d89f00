package pcapng

import (
	"fmt"
	"io"
	"time"

	"github.com/fidolab/fidolab/ctap/ctaphid"
	"github.com/fidolab/fidolab/harness/trace"
)

// Options tune Export.
type Options struct {
	// VendorID and ProductID go into the synthesized device descriptor; zero means 1209:F1D0,
	// fidolab's default persona.
	VendorID, ProductID uint16
}

// Stats says what Export wrote.
type Stats struct {
	Packets int // every packet, enumeration included
	Reports int // packets carrying a CTAPHID report
	Devices int // traced sources, each a USB device on bus 1
	// Synthesized counts reports made from messages that came without framing (event logs).
	Synthesized int
}

// Export reads a trace and writes it as pcapng. Every source becomes a USB device (bus 1, device
// number = source number) enumerated at its first record; every report becomes one interrupt
// transfer (host→key on endpoint 0x01, key→host on 0x81). Redacted bytes become zeros, and the
// packet says so in its comment. Exchanges that came without reports (an imported event log)
// are framed into reports with ctaphid's own framing on channel 0x00000001.
func Export(w io.Writer, r *trace.Reader, o Options) (Stats, error) {
	if o.VendorID == 0 && o.ProductID == 0 {
		o.VendorID, o.ProductID = 0x1209, 0xf1d0
	}
	h := r.Header()
	pw, err := NewWriter(w, "fidolab trace pcap", fmt.Sprintf("fidolab trace v%d recorded %s by %s",
		h.Version, h.Created.UTC().Format(time.RFC3339), h.Tool))
	if err != nil {
		return Stats{}, err
	}
	e := &exporter{pw: pw, o: o, enumerated: map[int]bool{}, hasReports: map[int]bool{}}
	for rec, err := range r.All() {
		if err != nil {
			return e.st, err
		}
		switch rec.Type {
		case trace.TypeReport:
			e.hasReports[rec.Src] = true
			e.report(rec.Src, rec.T, rec.From, rec.Hex)
		case trace.TypeExchange:
			if !e.hasReports[rec.Src] {
				e.synthesize(rec)
			}
		}
		if pw.err != nil {
			return e.st, pw.err
		}
	}
	e.st.Packets = pw.Packets()
	return e.st, pw.err
}

type exporter struct {
	pw         *Writer
	o          Options
	st         Stats
	id         uint64
	enumerated map[int]bool
	hasReports map[int]bool
}

func (e *exporter) dev(src int) byte { return byte(1 + (src-1)%127) }

// enumerate writes the three GET_DESCRIPTOR transfers a host makes before it uses a HID device.
func (e *exporter) enumerate(src int, t time.Time) {
	if e.enumerated[src] {
		return
	}
	e.enumerated[src] = true
	e.st.Devices++
	for _, d := range []struct {
		typ  byte
		data []byte
	}{{0x01, deviceDescriptor(e.o.VendorID, e.o.ProductID)}, {0x02, configurationDescriptor()}, {0x22, fidoReportDescriptor}} {
		e.id++
		setup := getDescriptor(d.typ, len(d.data))
		sub := urb{id: e.id, event: eventSubmit, xfer: xferControl, endpoint: endpointCtl, dev: e.dev(src), bus: 1,
			setup: setup, t: t, status: einprogress, length: uint32(len(d.data)), noDataFlag: dataIn}
		_ = e.pw.WritePacket(t, sub.marshal(), "")
		done := urb{id: e.id, event: eventComplete, xfer: xferControl, endpoint: endpointCtl, dev: e.dev(src), bus: 1,
			t: t, length: uint32(len(d.data)), data: d.data}
		_ = e.pw.WritePacket(t, done.marshal(), "")
	}
}

// report writes one CTAPHID report as the interrupt transfer event that carries its data.
func (e *exporter) report(src int, t time.Time, from string, hex *trace.Bytes) {
	e.enumerate(src, t)
	e.id++
	u := urb{id: e.id, xfer: xferInterrupt, dev: e.dev(src), bus: 1, t: t, length: uint32(len(hex.B)), data: hex.B}
	if from == trace.FromHost {
		u.event, u.endpoint, u.status = eventSubmit, endpointOut, einprogress
	} else {
		u.event, u.endpoint = eventComplete, endpointIn
	}
	comment := ""
	if len(hex.Redacted) > 0 {
		comment = "fidolab: secret bytes redacted to zero"
	}
	_ = e.pw.WritePacket(t, u.marshal(), comment)
	e.st.Reports++
}

// synthesize frames an exchange's messages into reports (event-log traces have no reports).
func (e *exporter) synthesize(x *trace.Record) {
	for _, m := range []*trace.Message{x.Request, x.Response} {
		if m == nil || m.Hex == nil {
			continue
		}
		cmd, ok := trace.HIDCode(m.HID)
		if !ok {
			cmd = ctaphid.CmdCBOR
		}
		from := trace.FromHost
		if m == x.Response {
			from = trace.FromKey
		}
		reports, err := ctaphid.Fragment(0x00000001, cmd, m.Hex.B)
		if err != nil {
			continue
		}
		for _, rep := range reports {
			e.report(x.Src, m.T, from, &trace.Bytes{B: rep[:]})
			e.st.Synthesized++
		}
	}
}
