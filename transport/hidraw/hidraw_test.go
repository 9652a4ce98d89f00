package hidraw

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// fidoDescriptor is the report descriptor of every CTAPHID key (CTAP 2.1 §11.2.8.1).
var fidoDescriptor = mustHex("06d0f10901a1010920150026ff007508954081020921150026ff00750895409102c0")

// keyboardDescriptor is HID 1.11's boot keyboard (Appendix E.6).
var keyboardDescriptor = mustHex("05010906a101050719e029e71500250175019508810295017508810195057501050819012905910295017503910195067508150025650507190029658100c0")

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// fakeNode is one hidraw node of a fake sysfs tree.
type fakeNode struct {
	name, uevent string
	rdesc        []byte
}

// fakeSys builds sys/class/hidraw/NAME → sys/devices/…/HIDDEV/hidraw/NAME as the kernel lays it out
// (class entries are symlinks; "device" points at the HID device) and a dev directory of nodes.
func fakeSys(t *testing.T, nodes ...fakeNode) Enumerator {
	t.Helper()
	root := t.TempDir()
	sys, dev := filepath.Join(root, "sys"), filepath.Join(root, "dev")
	require.NoError(t, os.MkdirAll(filepath.Join(sys, "class", "hidraw"), 0o755))
	require.NoError(t, os.MkdirAll(dev, 0o755))
	for i, n := range nodes {
		hid := filepath.Join(sys, "devices", "pci0000:00", "usb1", "1-"+string(rune('1'+i)), "0003:1050:0407.000"+string(rune('1'+i)))
		node := filepath.Join(hid, "hidraw", n.name)
		require.NoError(t, os.MkdirAll(node, 0o755))
		require.NoError(t, os.Symlink("../../../"+filepath.Base(hid), filepath.Join(node, "device")))
		if n.uevent != "" {
			require.NoError(t, os.WriteFile(filepath.Join(hid, "uevent"), []byte(n.uevent), 0o644))
		}
		if n.rdesc != nil {
			require.NoError(t, os.WriteFile(filepath.Join(hid, "report_descriptor"), n.rdesc, 0o644))
		}
		rel, err := filepath.Rel(filepath.Join(sys, "class", "hidraw"), node)
		require.NoError(t, err)
		require.NoError(t, os.Symlink(rel, filepath.Join(sys, "class", "hidraw", n.name)))
		require.NoError(t, os.WriteFile(filepath.Join(dev, n.name), nil, 0o600))
	}
	return Enumerator{Sys: sys, Dev: dev}
}

func TestListFindsFIDOKeysOnly(t *testing.T) {
	t.Parallel()
	e := fakeSys(t,
		fakeNode{"hidraw10", "DRIVER=hid-generic\nHID_ID=0003:00001209:0000F1D0\nHID_NAME=fidolab virtual key\nHID_PHYS=usb-0000:00:14.0-3/input0\nHID_UNIQ=FL0001\n", fidoDescriptor},
		fakeNode{"hidraw1", "HID_ID=0003:0000046D:0000C31C\nHID_NAME=Logitech USB Keyboard\n", keyboardDescriptor},
		fakeNode{"hidraw2", "HID_ID=0003:00001050:00000407\nHID_NAME=Yubico YubiKey OTP+FIDO+CCID\nHID_PHYS=usb-0000:00:14.0-2/input1\n", fidoDescriptor},
		fakeNode{"hidraw3", "HID_ID=0003:00001050:00000407\n", []byte{0x06, 0xd0}}, // truncated descriptor
		fakeNode{"hidraw4", "HID_NAME=no id\n", fidoDescriptor},
	)
	got, err := e.List(false)
	require.NoError(t, err)
	require.Len(t, got, 3, "%+v", got)
	require.Equal(t, filepath.Join(e.Dev, "hidraw2"), got[0].Path, "ordered by node number, not name")
	require.Equal(t, filepath.Join(e.Dev, "hidraw4"), got[1].Path)
	require.Equal(t, filepath.Join(e.Dev, "hidraw10"), got[2].Path)

	k := got[2]
	require.Equal(t, uint16(BusUSB), k.Bus)
	require.Equal(t, "1209:f1d0", k.ID())
	require.Equal(t, "fidolab virtual key", k.Product)
	require.Equal(t, "FL0001", k.Serial)
	require.Equal(t, "usb-0000:00:14.0-3/input0", k.Phys)
	require.True(t, k.FIDO)
	require.True(t, k.Accessible)
	require.Empty(t, k.Problem)
	require.DirExists(t, k.SysPath)
	require.Contains(t, got[1].Problem, "no HID_ID", "a key without identity is still listed, with the problem")

	all, err := e.List(true)
	require.NoError(t, err)
	require.Len(t, all, 5)
	require.Equal(t, "Logitech USB Keyboard", all[0].Product)
	require.False(t, all[0].FIDO)
	require.Contains(t, all[2].Problem, "needs 2 data bytes")

	d, err := e.Describe("/dev/hidraw2")
	require.NoError(t, err)
	require.Equal(t, "Yubico YubiKey OTP+FIDO+CCID", d.Product)
	_, err = e.Describe("/dev/hidraw9")
	require.ErrorContains(t, err, "no hidraw9 in sysfs")
	_, err = e.Describe("/dev/sda")
	require.ErrorContains(t, err, "not a hidraw node")
}

func TestListWithoutHidraw(t *testing.T) {
	t.Parallel()
	got, err := Enumerator{Sys: t.TempDir()}.List(true)
	require.NoError(t, err, "a machine without hidraw has no keys, it is not broken")
	require.Empty(t, got)
}

func TestSameKey(t *testing.T) {
	t.Parallel()
	a := Device{Path: "/dev/hidraw3", Bus: BusUSB, VendorID: 0x1050, ProductID: 0x0407, Serial: "1", Phys: "usb-x-2/input1"}
	b := a
	b.Path = "/dev/hidraw5"
	require.True(t, a.SameKey(b), "a replug may change the node number")
	b.Phys = "usb-x-3/input1"
	require.False(t, a.SameKey(b), "another port: another key of the same model")
	b.Phys = ""
	require.True(t, a.SameKey(b), "no port known (UHID): vendor, product and serial decide")
	b.Serial = "2"
	require.False(t, a.SameKey(b))
	c := a
	c.Phys = "usb-x-4/input1"
	require.True(t, a.SameModel(c), "the same model in another port")
	c.ProductID = 0x0402
	require.False(t, a.SameModel(c))
}

func TestParseHIDID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            string
		bus, vid, pid uint16
		err           string
	}{
		{in: "0003:00001050:00000407", bus: 3, vid: 0x1050, pid: 0x0407},
		{in: "0006:00001209:0000F1D0", bus: 6, vid: 0x1209, pid: 0xf1d0},
		{in: "0003:1050", err: "not BUS:VENDOR:PRODUCT"},
		{in: "0003:00011050:00000407", err: "exceeds 16 bits"},
		{in: "0003::00000407", err: "bad field"},
		{in: "0003:zz:00000407", err: "invalid syntax"},
		{in: "0003:000000001:1", err: "bad field"},
	}
	for _, tt := range tests {
		bus, vid, pid, err := ParseHIDID(tt.in)
		if tt.err != "" {
			require.ErrorContains(t, err, tt.err, tt.in)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, [3]uint16{tt.bus, tt.vid, tt.pid}, [3]uint16{bus, vid, pid}, tt.in)
	}
}

func TestParseUevent(t *testing.T) {
	t.Parallel()
	kv := ParseUevent([]byte("DRIVER=hid-generic\nHID_NAME=a=b\nnoequals\n=x\nHID_UNIQ=\n"))
	require.Equal(t, map[string]string{"DRIVER": "hid-generic", "HID_NAME": "a=b", "HID_UNIQ": ""}, kv)
}

// FuzzParseUevent: a uevent file never panics the enumeration, whatever a driver put in it.
func FuzzParseUevent(f *testing.F) {
	f.Add([]byte("HID_ID=0003:00001050:00000407\nHID_NAME=Yubico\nHID_UNIQ=\n"))
	f.Add([]byte("HID_ID=::\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d Device
		err := d.applyUevent(ParseUevent(b))
		if err == nil && d.Bus == 0 && d.VendorID == 0 && d.ProductID == 0 {
			if _, ok := ParseUevent(b)["HID_ID"]; !ok {
				t.Fatal("no HID_ID but no error")
			}
		}
	})
}
