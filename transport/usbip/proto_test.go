package usbip

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

// The HID example of Documentation/usb/usbip_protocol.rst: a CTAPHID INIT and its answer, as
// captured on the wire.
const (
	docCmdIntrIN  = "00000001 00000d05 0001000f 00000001 00000001 00000200 00000040 ffffffff 00000000 00000004 00000000 00000000"
	docCmdIntrOUT = "00000001 00000d06 0001000f 00000000 00000001 00000000 00000040 ffffffff 00000000 00000004 00000000 00000000" +
		"ffffffff860008a784ce5ae212376300000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
	docRetIntrOut = "00000003 00000d06 00000000 00000000 00000000 00000000 00000040 ffffffff 00000000 00000000 00000000 00000000"
	docRetIntrIn  = "00000003 00000d05 00000000 00000000 00000000 00000000 00000040 ffffffff 00000000 00000000 00000000 00000000" +
		"ffffffff860011a784ce5ae2123763612891b1020100000400000000000000000000000000000000000000000000000000000000000000000000000000000000"
)

func TestKernelDocExample(t *testing.T) {
	t.Parallel()
	cmd, err := ReadCommand(bytes.NewReader(unhex(t, docCmdIntrIN)))
	require.NoError(t, err)
	in := cmd.(*Submit)
	require.Equal(t, &Submit{Seqnum: 0xd05, DevID: 0x0001000f, Direction: DirIn, EP: 1, TransferFlags: 0x200, Length: 64,
		StartFrame: 0xffffffff, Interval: 4}, in, "the capture has start_frame ffffffff and number_of_packets 0")
	require.Equal(t, unhex(t, docCmdIntrIN), in.Encode())

	cmd, err = ReadCommand(bytes.NewReader(unhex(t, docCmdIntrOUT)))
	require.NoError(t, err)
	out := cmd.(*Submit)
	require.Equal(t, uint32(DirOut), out.Direction)
	require.Len(t, out.Data, 64)
	require.Equal(t, []byte{0xff, 0xff, 0xff, 0xff, 0x86, 0x00, 0x08}, out.Data[:7], "CTAPHID INIT on the broadcast channel")
	require.Equal(t, unhex(t, docCmdIntrOUT), out.Encode())

	require.Equal(t, unhex(t, docRetIntrOut), RetSubmitMsg{Seqnum: 0xd06, ActualLength: 64, StartFrame: 0xffffffff}.Encode())
	r, err := ReadReply(bytes.NewReader(unhex(t, docRetIntrIn)), func(uint32) bool { return true })
	require.NoError(t, err)
	ret := r.(*RetSubmitMsg)
	require.Equal(t, uint32(64), ret.ActualLength)
	require.Equal(t, unhex(t, docRetIntrIn), ret.Encode())
}

func TestDeviceRecordLayout(t *testing.T) {
	t.Parallel()
	d := Device{Path: "/sys/devices/x/usb1/1-1", BusID: "1-1", BusNum: 1, DevNum: 2, Speed: 2,
		VendorID: 0x1209, ProductID: 0xf1d0, BCDDevice: 0x0100, ConfigurationValue: 1, NumConfigs: 1, NumInterfaces: 1,
		Interfaces: []Interface{{Class: 3}}}
	b := AppendDevice(nil, d, true)
	require.Len(t, b, 0x138+4, "312-byte record and one 4-byte interface")
	require.Equal(t, "1-1", cString(b[0x100:0x120]))
	require.Equal(t, unhex(t, "00000001 00000002 00000002 1209 f1d0 0100 00 00 00 01 01 01 03000000"), b[0x120:])
	got := DecodeDevice(b[:0x138])
	d.Interfaces = nil
	require.Equal(t, d, got)
	require.Equal(t, uint32(0x00010002), d.DevID())
	require.Len(t, AppendDevice(nil, d, false), 0x138)
	require.Equal(t, unhex(t, "0111 8005 00000000"), OpHeader{Version: Version, Code: OpReqDevlist}.Encode())
	long := AppendDevice(nil, Device{Path: strings.Repeat("p", 300)}, false)
	require.Equal(t, byte(0), long[255], "path is cut and NUL-terminated")
	require.Equal(t, unhex(t, "00000004 00000007 00000000 00000000 00000000 ffffff98"+strings.Repeat("00", 24)),
		RetUnlinkMsg{Seqnum: 7, Status: StatusUnlinked}.Encode(), "status -ECONNRESET, big-endian")
}

func TestReadCommandRejects(t *testing.T) {
	t.Parallel()
	mk := func(s Submit) []byte { return s.Encode() }
	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"unknown command", func() []byte { b := mk(Submit{}); b[3] = 9; return b }(), "URB command 0x9"},
		{"RET_SUBMIT from a client", RetSubmitMsg{}.Encode(), "URB command 0x3"},
		{"direction 2", mk(Submit{Direction: 2, NumberOfPackets: noISOPackets}), "direction 2"},
		{"endpoint 16", mk(Submit{EP: 16, NumberOfPackets: noISOPackets}), "endpoint 16"},
		{"huge transfer", mk(Submit{Direction: DirIn, Length: 1 << 21, NumberOfPackets: noISOPackets}), "over the 1048576-byte limit"},
		{"ISO packets", mk(Submit{Direction: DirIn, EP: 1, Length: 64, NumberOfPackets: 3}), "3 ISO packets"},
		{"OUT data cut short", mk(Submit{Direction: DirOut, EP: 1, Length: 64, NumberOfPackets: noISOPackets, Data: []byte{1, 2}}), "inside the 64-byte buffer"},
		{"header cut short", mk(Submit{})[:20], "inside a URB header"},
	}
	for _, c := range cases {
		_, err := ReadCommand(bytes.NewReader(c.raw))
		require.ErrorIs(t, err, ErrProtocol, c.name)
		require.ErrorContains(t, err, c.want, c.name)
	}
	cmd, err := ReadCommand(bytes.NewReader(Unlink{Seqnum: 5, UnlinkSeqnum: 4}.Encode()))
	require.NoError(t, err)
	require.Equal(t, &Unlink{Seqnum: 5, UnlinkSeqnum: 4}, cmd)
}

// FuzzReadCommand reads arbitrary bytes as client commands: never a panic, never a buffer larger
// than the header said.
func FuzzReadCommand(f *testing.F) {
	f.Add(unhex(f, docCmdIntrIN))
	f.Add(unhex(f, docCmdIntrOUT))
	f.Add(Unlink{Seqnum: 2, UnlinkSeqnum: 1}.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 32 {
			c, err := ReadCommand(r)
			if err != nil {
				return
			}
			if s, ok := c.(*Submit); ok {
				require.LessOrEqual(t, len(s.Data), int(s.Length))
				require.LessOrEqual(t, s.EP, uint32(15))
			}
		}
	})
}

// FuzzReadReply reads arbitrary bytes as server replies (the client side's parser).
func FuzzReadReply(f *testing.F) {
	f.Add(unhex(f, docRetIntrIn))
	f.Add(RetUnlinkMsg{Seqnum: 1, Status: StatusUnlinked}.Encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 32 {
			m, err := ReadReply(r, func(seq uint32) bool { return seq%2 == 1 })
			if err != nil {
				return
			}
			if s, ok := m.(*RetSubmitMsg); ok {
				require.LessOrEqual(t, len(s.Data), int(s.ActualLength))
			}
		}
	})
}
