// Command hidgkey is a test fixture for transport/usb's guest test: it serves an emulated fidolab key
// on the gadget side of a Linux USB HID gadget (/dev/hidgN of configfs's hid function), so that the
// guest's own USB host side (dummy_hcd) sees a real USB FIDO device for libusb to open. Output
// reports arrive as 64-byte reads, input reports leave as 64-byte writes.
package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/fidolab/fidolab/authenticator/emulator"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: hidgkey /dev/hidgN")
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Args[1], os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hidgkey:", err)
		os.Exit(1)
	}
	k, err := emulator.Open(emulator.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "hidgkey:", err)
		os.Exit(1)
	}
	var wmu sync.Mutex
	port := k.Device.Open(func(r []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := f.Write(r); err != nil {
			fmt.Fprintln(os.Stderr, "hidgkey: write:", err)
		}
	})
	fmt.Println("hidgkey: serving on", os.Args[1])
	buf := make([]byte, 64)
	for {
		n, err := f.Read(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "hidgkey: read:", err)
			os.Exit(1)
		}
		if n == 64 {
			port.Input(buf)
		}
	}
}
