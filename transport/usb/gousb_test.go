//go:build gousb

package usb

import (
	"os"
	"testing"

	"github.com/google/gousb"
	"github.com/stretchr/testify/require"
)

// fidoSetting is a FIDO key's HID interface: class 3, no boot subclass, 64-byte interrupt endpoints.
func hidSetting(num, sub int, eps ...gousb.EndpointDesc) gousb.InterfaceSetting {
	m := map[gousb.EndpointAddress]gousb.EndpointDesc{}
	for _, ep := range eps {
		m[ep.Address] = ep
	}
	return gousb.InterfaceSetting{Number: num, Class: gousb.ClassHID, SubClass: gousb.Class(sub), Endpoints: m}
}

func ep(num int, in bool, tt gousb.TransferType, mps int) gousb.EndpointDesc {
	d := gousb.EndpointDesc{Number: num, TransferType: tt, MaxPacketSize: mps, Direction: gousb.EndpointDirectionOut,
		Address: gousb.EndpointAddress(num)}
	if in {
		d.Direction, d.Address = gousb.EndpointDirectionIn, gousb.EndpointAddress(0x80|num)
	}
	return d
}

func TestCandidatesPickTheFIDOShapedInterface(t *testing.T) {
	t.Parallel()
	intr := gousb.TransferTypeInterrupt
	desc := &gousb.DeviceDesc{Configs: map[int]gousb.ConfigDesc{1: {Number: 1, Interfaces: []gousb.InterfaceDesc{
		// 0: boot keyboard (an OTP interface): never touched
		{Number: 0, AltSettings: []gousb.InterfaceSetting{hidSetting(0, 1, ep(1, true, intr, 8))}},
		// 1: the FIDO interface
		{Number: 1, AltSettings: []gousb.InterfaceSetting{hidSetting(1, 0, ep(4, false, intr, 64), ep(4, true, intr, 64))}},
		// 2: a CCID interface (class 0x0B)
		{Number: 2, AltSettings: []gousb.InterfaceSetting{{Number: 2, Class: 0x0B}}},
		// 3: a HID interface with 8-byte reports
		{Number: 3, AltSettings: []gousb.InterfaceSetting{hidSetting(3, 0, ep(5, true, intr, 8))}},
		// 4: HID, IN only (output by SET_REPORT)
		{Number: 4, AltSettings: []gousb.InterfaceSetting{hidSetting(4, 0, ep(6, true, intr, 64))}},
	}}}}
	got := candidates(desc, 1)
	require.Equal(t, []candidate{{cfg: 1, iface: 1, in: 4, out: 4}, {cfg: 1, iface: 4, in: 6, out: -1}}, got)
	require.Empty(t, candidates(desc, 2), "no such configuration")
	require.Equal(t, got, firstCandidates(desc))
}

// TestListWithoutUSB: where libusb cannot start (no usbfs) or finds nothing, List answers with an
// error or an empty list; it never panics (gousb panics when libusb_init fails).
func TestListWithoutUSB(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/dev/bus/usb"); err == nil {
		t.Skip("this machine has USB; the guest test covers a real device")
	}
	devs, err := List()
	if err == nil {
		require.Empty(t, devs)
	}
	_, err = Open(Spec{Vendor: 0x1209, Product: 0xf1d0})
	require.Error(t, err)
}
