package usbredir

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

var n64 = Negotiate(OurCaps, OurCaps)

// Byte layouts written out from usbredirproto.h (packed, little-endian).
func TestEncodingGolden(t *testing.T) {
	t.Parallel()
	hello := AppendPacket(nil, Negotiated{}, Packet{Type: TypeHello, Header: EncodeHello(Hello{Version: "v1", Caps: OurCaps})})
	require.Equal(t, unhex(t, "00000000 44000000 00000000 7631"+strings.Repeat("00", 62)+"7e000000"), hello,
		"12-byte header with a 32-bit id; caps 0x7e: connect_device_version, filter, disconnect_ack, ep_info mps, 64-bit ids, 32-bit bulk length")

	dc := AppendPacket(nil, n64, Packet{Type: TypeDeviceConnect, Header: DeviceConnect{Speed: SpeedFull,
		VendorID: 0x1209, ProductID: 0xf1d0, BCDDevice: 0x0100}.Encode(n64)})
	require.Equal(t, unhex(t, "01000000 0a000000 0000000000000000 01 00 00 00 0912 d0f1 0001"), dc)
	require.Len(t, DeviceConnect{}.Encode(Negotiated{}), 8, "without connect_device_version: no bcdDevice")

	ctl := AppendPacket(nil, n64, Packet{Type: TypeControlPacket, ID: 0x0102030405060708,
		Header: ControlHeader{Endpoint: 0x80, Request: 6, RequestType: 0x80, Status: StatusSuccess, Value: 0x0100, Length: 2}.Encode(),
		Data:   []byte{0x12, 0x01}})
	require.Equal(t, unhex(t, "64000000 0c000000 0807060504030201 80 06 80 00 0001 0000 0200 1201"), ctl)

	var ep EPInfo
	ep.Type[EPIndex(0x81)], ep.MaxPacketSize[EPIndex(0x81)] = EPTypeInterrupt, 64
	enc := ep.Encode(n64)
	require.Len(t, enc, 96+64, "type, interval, interface, max_packet_size; no max_streams without bulk_streams")
	require.Equal(t, byte(3), enc[17])
	require.Equal(t, []byte{64, 0}, enc[96+2*17:96+2*17+2])
	require.Equal(t, ep, DecodeEPInfo(enc, n64))
	require.Len(t, ep.Encode(Negotiated{EPMaxPacketSize: true, BulkStreams: true}), 96+64+128)

	ifs := InterfaceInfo{Count: 1}
	ifs.Class[0] = 3
	require.Equal(t, ifs, DecodeInterfaceInfo(ifs.Encode()))
	require.Len(t, ifs.Encode(), 132)

	bh := BulkHeader{Endpoint: 0x82, Status: StatusInval, Length: 0x12345, StreamID: 7}
	require.Equal(t, bh, DecodeBulkHeader(bh.Encode(Negotiated{BulkLength32: true})))
	require.Equal(t, uint32(0x2345), DecodeBulkHeader(bh.Encode(Negotiated{})).Length, "16-bit length without 32bits_bulk_length")

	require.Equal(t, 17, EPIndex(0x81))
	require.Equal(t, 1, EPIndex(0x01))
	require.Equal(t, "interrupt_packet", TypeInterruptPacket.String())
	require.Equal(t, "type 99", Type(99).String())
}

func TestReaderRoundTrip(t *testing.T) {
	t.Parallel()
	var wire []byte
	wire = AppendPacket(wire, Negotiated{}, Packet{Type: TypeHello, Header: EncodeHello(Hello{Version: strings.Repeat("x", 80), Caps: 0xff})})
	r := NewReader(bytes.NewReader(wire), FromGuest)
	p, err := r.Next()
	require.NoError(t, err)
	h, err := DecodeHello(p.Header)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("x", 63), h.Version, "the version is cut to 63 bytes and NUL-terminated")
	require.Equal(t, Caps(0xff), h.Caps)

	wire = wire[:0]
	out := []Packet{
		{Type: TypeSetConfiguration, ID: 1 << 40, Header: []byte{1}},
		{Type: TypeControlPacket, ID: 2, Header: ControlHeader{RequestType: 0x21, Request: 0x09, Length: 3}.Encode(), Data: []byte{1, 2, 3}},
		{Type: TypeInterruptPacket, ID: 3, Header: InterruptHeader{Endpoint: 0x01, Length: 2}.Encode(), Data: []byte{9, 9}},
		{Type: TypeFilterFilter, Data: []byte("0x03,-1,-1,-1,1\x00")},
		{Type: Type(77), ID: 4, Data: []byte("future")},
		{Type: TypeCancelDataPacket, ID: 2},
	}
	for _, p := range out {
		wire = AppendPacket(wire, n64, p)
	}
	r = NewReader(bytes.NewReader(wire), FromGuest)
	r.SetNegotiated(n64)
	for _, want := range out {
		got, err := r.Next()
		require.NoError(t, err)
		require.Equal(t, want.Type, got.Type)
		require.Equal(t, want.ID, got.ID)
		require.Equal(t, string(append(want.Header, want.Data...)), string(append(got.Header, got.Data...)))
	}
	require.False(t, Type(77).Known())
}

func TestReaderRejectsMalformed(t *testing.T) {
	t.Parallel()
	ctl := func(rt byte, length uint16, data string) Packet {
		return Packet{Type: TypeControlPacket, Header: ControlHeader{RequestType: rt, Endpoint: rt & 0x80, Length: length}.Encode(), Data: []byte(data)}
	}
	cases := []struct {
		name string
		from Side
		p    Packet
		raw  []byte // instead of p
		want string
	}{
		{name: "set_configuration with 2 bytes", p: Packet{Type: TypeSetConfiguration, Header: []byte{1, 2}}, want: "length 2, want 1"},
		{name: "reset with a body", p: Packet{Type: TypeReset, Header: []byte{0}}, want: "reset with length 1, want 0"},
		{name: "ep_info without max_packet_size", p: Packet{Type: TypeEPInfo, Header: make([]byte, 96)}, want: "want 160"},
		{name: "control OUT with less data than length", p: ctl(0x21, 4, "ab"), want: "length 4 and 2 bytes"},
		{name: "control IN request carrying data", p: ctl(0x80, 4, "abcd"), want: "wrong direction"},
		{name: "control reply to an OUT carrying data", from: FromHost, p: ctl(0x00, 1, "a"), want: "wrong direction"},
		{name: "control on endpoint 1", p: Packet{Type: TypeControlPacket, Header: ControlHeader{Endpoint: 1}.Encode()}, want: "want endpoint 0"},
		{name: "interrupt shorter than its header", p: Packet{Type: TypeInterruptPacket, Header: []byte{1, 0}}, want: "shorter than its 4-byte header"},
		{name: "interrupt OUT length mismatch", p: Packet{Type: TypeInterruptPacket, Header: InterruptHeader{Endpoint: 1, Length: 64}.Encode(), Data: []byte{1}}, want: "length 64 and 1 bytes"},
		{name: "filter without NUL", p: Packet{Type: TypeFilterFilter, Data: []byte("-1,-1,-1,-1,1")}, want: "NUL-terminated"},
		{name: "huge length", raw: unhex(t, "67000000 ffffffff 0000000000000000"), want: "over the 1048576-byte limit"},
		{name: "truncated body", raw: unhex(t, "67000000 08000000 0000000000000000 01000400"), want: "closed inside a interrupt_packet"},
		{name: "truncated header", raw: unhex(t, "67000000 0800"), want: "inside a packet header"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			raw := c.raw
			if raw == nil {
				raw = AppendPacket(nil, n64, c.p)
			}
			r := NewReader(bytes.NewReader(raw), c.from)
			r.SetNegotiated(n64)
			_, err := r.Next()
			require.ErrorIs(t, err, ErrProtocol)
			require.ErrorContains(t, err, c.want)
		})
	}
	// hellos, before negotiation
	for _, body := range [][]byte{make([]byte, 63), make([]byte, 66)} {
		r := NewReader(bytes.NewReader(AppendPacket(nil, Negotiated{}, Packet{Type: TypeHello, Header: body})), FromGuest)
		_, err := r.Next()
		require.ErrorIs(t, err, ErrProtocol)
	}
}

func TestFilter(t *testing.T) {
	t.Parallel()
	key := DeviceConnect{VendorID: 0x1209, ProductID: 0xf1d0, BCDDevice: 0x0100}
	hid := InterfaceInfo{Count: 1}
	hid.Class[0] = 3
	cases := []struct {
		filter string
		allow  bool
	}{
		{"-1,-1,-1,-1,1", true},
		{"0x03,-1,-1,-1,1|-1,-1,-1,-1,0", true},
		{"0x08,-1,-1,-1,1", false},                   // mass storage only
		{"-1,0x1209,-1,-1,0|-1,-1,-1,-1,1", false},   // first match blocks
		{"-1,0x1209,0xf1d0,0x0100,1", true},          // exact
		{"-1,0x1209,0xf1d0,0x0200,1", false},         // wrong version: nothing matches
		{"3,4617,61904,256,1", true},                 // decimal
		{"||0x03,-1,-1,-1,1|", true},                 // empty rules skipped
		{"-1,0x1209,-1,-1,1|0x03,-1,-1,-1,0", true},  // order matters
		{"0x03,-1,-1,-1,0|-1,0x1209,-1,-1,1", false}, // order matters
		{"0x00,-1,-1,-1,0|-1,-1,-1,-1,1", true},      // device class 0 is not checked
		{"", false},                                  // no rules: deny
	}
	for _, c := range cases {
		f, err := ParseFilter(c.filter)
		require.NoError(t, err, c.filter)
		require.Equal(t, c.allow, f.Allows(key, hid), c.filter)
	}
	// With several interfaces, non-boot HID ones are skipped unless all are.
	two := InterfaceInfo{Count: 2}
	two.Class[0], two.Class[1] = 3, 8
	f, _ := ParseFilter("0x08,-1,-1,-1,1")
	require.True(t, f.Allows(key, two))
	for _, bad := range []string{"1,2,3,4", "1,2,3,4,5,6", "x,-1,-1,-1,1", "256,-1,-1,-1,1", "-1,65536,-1,-1,1", "-2,-1,-1,-1,1"} {
		_, err := ParseFilter(bad)
		require.Error(t, err, bad)
	}
}

// FuzzReader feeds arbitrary bytes to a Reader in every layout and direction: never a panic, and
// every packet it returns has the header length its type calls for.
func FuzzReader(f *testing.F) {
	f.Add(AppendPacket(nil, n64, Packet{Type: TypeControlPacket, Header: ControlHeader{RequestType: 0x21, Length: 1}.Encode(), Data: []byte{1}}), byte(0))
	f.Add(AppendPacket(nil, Negotiated{}, Packet{Type: TypeHello, Header: EncodeHello(Hello{Caps: OurCaps})}), byte(0xff))
	f.Add(AppendPacket(nil, n64, Packet{Type: TypeEPInfo, Header: make([]byte, 160)}), byte(1))
	f.Add(AppendPacket(nil, n64, Packet{Type: TypeBulkPacket, Header: BulkHeader{Endpoint: 0x81, Length: 5}.Encode(n64), Data: []byte("hello")}), byte(3))
	f.Fuzz(func(t *testing.T, data []byte, flags byte) {
		var n Negotiated
		if flags&1 != 0 {
			n = n64
		}
		n.BulkStreams = flags&2 != 0
		from := Side(flags >> 7)
		r := NewReader(bytes.NewReader(data), from)
		r.SetNegotiated(n)
		for range 64 {
			p, err := r.Next()
			if err != nil {
				return
			}
			if hs := fixedHeaderSize(p.Type, n); hs >= 0 {
				require.Len(t, p.Header, hs)
			}
			if hs := dataHeaderSize(p.Type, n); hs >= 0 {
				require.Len(t, p.Header, hs)
			}
		}
	})
}
