package uhid

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fidolab/fidolab/transport/usbdev"
)

func TestEventSize(t *testing.T) {
	t.Parallel()
	// sizeof(struct uhid_event) on every Linux ABI: 4 + sizeof(struct uhid_create2_req).
	require.Equal(t, 4376, EventSize)
}

func TestCreate2Encode(t *testing.T) {
	t.Parallel()
	b, err := Create2{Name: "fidolab default key", Phys: "fidolab/uhid-1-1", Uniq: "0001", Bus: BusUSB,
		Vendor: 0x1209, Product: 0xf1d0, Version: 0x0100, Country: 0, Descriptor: usbdev.ReportDescriptor}.Encode()
	require.NoError(t, err)
	require.Len(t, b, EventSize)
	le := binary.LittleEndian
	// Offsets of the packed struct uhid_create2_req after the 4-byte type (linux/uhid.h).
	require.Equal(t, uint32(11), le.Uint32(b[0:]), "UHID_CREATE2")
	require.Equal(t, "fidolab default key\x00", string(b[4:4+20]))
	require.Equal(t, "fidolab/uhid-1-1\x00", string(b[132:132+17]))
	require.Equal(t, "0001\x00", string(b[196:196+5]))
	require.Equal(t, uint16(34), le.Uint16(b[260:]), "rd_size")
	require.Equal(t, uint16(3), le.Uint16(b[262:]), "bus")
	require.Equal(t, uint32(0x1209), le.Uint32(b[264:]), "vendor")
	require.Equal(t, uint32(0xf1d0), le.Uint32(b[268:]), "product")
	require.Equal(t, uint32(0x0100), le.Uint32(b[272:]), "version")
	require.Equal(t, uint32(0), le.Uint32(b[276:]), "country")
	// The FIDO descriptor exactly as the recipe saw the kernel report it for a working key.
	require.Equal(t, "06d0f10901a1010920150026ff007508954081020921150026ff00750895409102c0",
		hexString(b[280:280+34]))
	for _, z := range b[280+34:] {
		require.Zero(t, z)
	}
}

func TestCreate2EncodeRejects(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, 200))
	for name, c := range map[string]Create2{
		"no descriptor":   {Name: "x"},
		"huge descriptor": {Descriptor: make([]byte, MaxDescriptor+1)},
		"long name":       {Name: "n" + long[:127], Descriptor: []byte{1}},
		"long phys":       {Phys: string(make([]byte, 64)), Descriptor: []byte{1}},
		"NUL in uniq":     {Uniq: "a\x00b", Descriptor: []byte{1}},
	} {
		_, err := c.Encode()
		require.Error(t, err, name)
	}
	_, err := Create2{Name: string(make([]byte, 0)) + "n", Phys: "p", Descriptor: make([]byte, MaxDescriptor)}.Encode()
	require.NoError(t, err, "a descriptor of exactly HID_MAX_DESCRIPTOR_SIZE fits")
}

func TestReplyEncodings(t *testing.T) {
	t.Parallel()
	require.Equal(t, "0a000000"+"78563412"+"0500"+"0000", hexString(encodeGetReportReply(0x12345678, errnoEIO, nil)))
	require.Equal(t, "0e000000"+"01000000"+"0000", hexString(encodeSetReportReply(1, errnoOK)))
	d := encodeDestroy()
	require.Len(t, d, EventSize)
	require.Equal(t, "01000000", hexString(d[:4]))

	report := make([]byte, 64)
	report[0], report[63] = 0xff, 0xee
	in, err := encodeInput2(nil, report)
	require.NoError(t, err)
	require.Equal(t, "0c000000"+"4000"+"ff", hexString(in[:7]))
	require.Len(t, in, 6+64)
	require.Equal(t, byte(0xee), in[69])
	_, err = encodeInput2(nil, make([]byte, DataMax+1))
	require.Error(t, err)
}

// event builds a kernel event of the full struct size with fields at their ABI offsets.
func event(typ EventType, set func(b []byte)) []byte {
	b := make([]byte, EventSize)
	binary.LittleEndian.PutUint32(b, uint32(typ))
	if set != nil {
		set(b)
	}
	return b
}

func TestParseEvent(t *testing.T) {
	t.Parallel()
	le := binary.LittleEndian
	out := event(EventOutput, func(b []byte) {
		b[4], b[5], b[68] = 0, 0xaa, 0xbb
		le.PutUint16(b[4+4096:], 65)
		b[4+4096+2] = byte(OutputReport)
	})
	ev, err := ParseEvent(out)
	require.NoError(t, err)
	require.Equal(t, EventOutput, ev.Type)
	require.Equal(t, OutputReport, ev.ReportType)
	require.Len(t, ev.Data, 65)
	require.Equal(t, byte(0xaa), ev.Data[1])
	require.Equal(t, byte(0xbb), ev.Data[64])

	ev, err = ParseEvent(event(EventStart, func(b []byte) { le.PutUint64(b[4:], 5) }))
	require.NoError(t, err)
	require.Equal(t, Event{Type: EventStart, DevFlags: 5}, ev)

	ev, err = ParseEvent(event(EventGetReport, func(b []byte) { le.PutUint32(b[4:], 77); b[8], b[9] = 3, byte(FeatureReport) }))
	require.NoError(t, err)
	require.Equal(t, Event{Type: EventGetReport, ID: 77, ReportNumber: 3, ReportType: FeatureReport}, ev)

	ev, err = ParseEvent(event(EventSetReport, func(b []byte) {
		le.PutUint32(b[4:], 9)
		b[9] = byte(OutputReport)
		le.PutUint16(b[10:], 3)
		copy(b[12:], "xyz")
	}))
	require.NoError(t, err)
	require.Equal(t, Event{Type: EventSetReport, ID: 9, ReportType: OutputReport, Data: []byte("xyz")}, ev)

	for _, typ := range []EventType{EventOpen, EventClose, EventStop, 99} {
		ev, err = ParseEvent(event(typ, nil))
		require.NoError(t, err)
		require.Equal(t, Event{Type: typ}, ev)
	}

	for name, b := range map[string][]byte{
		"empty":            nil,
		"three bytes":      {6, 0, 0},
		"short output":     event(EventOutput, nil)[:4+4096+2],
		"short start":      event(EventStart, nil)[:8],
		"short get_report": event(EventGetReport, nil)[:9],
		"output size":      event(EventOutput, func(b []byte) { le.PutUint16(b[4+4096:], 4097) }),
		"set_report size":  event(EventSetReport, func(b []byte) { le.PutUint16(b[10:], 4097) }),
		"set_report data":  event(EventSetReport, func(b []byte) { le.PutUint16(b[10:], 100) })[:12+99],
	} {
		_, err := ParseEvent(b)
		require.Error(t, err, name)
	}
}

func TestCTAPReport(t *testing.T) {
	t.Parallel()
	r := make([]byte, 65)
	r[1] = 0x42
	got, ok := ctapReport(r, 64)
	require.True(t, ok)
	require.Len(t, got, 64)
	require.Equal(t, byte(0x42), got[0])
	r[0] = 1 // a report number the FIDO descriptor does not have
	_, ok = ctapReport(r, 64)
	require.False(t, ok)
	_, ok = ctapReport(make([]byte, 64), 64)
	require.False(t, ok, "a 64-byte write is a report number and 63 bytes: short")
	_, ok = ctapReport(make([]byte, 66), 64)
	require.False(t, ok)
}

func TestEventTypeString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "CREATE2", EventCreate2.String())
	require.Equal(t, "UHID_EVENT_99", EventType(99).String())
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
