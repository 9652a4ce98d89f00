package hidraw

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"github.com/fidolab/fidolab/transport/hiddesc"
)

// hidraw ioctls of linux/hidraw.h, encoded with the generic _IOC layout (x86, arm, arm64, riscv):
// direction in bits 30–31, argument size in 16–29, type 'H' in 8–15, number in 0–7.
const (
	iocRead = 2

	nrGetRDescSize = 0x01
	nrGetRDesc     = 0x02
	nrGetRawInfo   = 0x03
	nrGetRawName   = 0x04
)

func ioc(dir, nr, size uintptr) uintptr { return dir<<30 | size<<16 | 'H'<<8 | nr }

// ioctl runs one ioctl on f's descriptor through the runtime poller's raw access.
func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	}); err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// reportDescriptor reads the node's report descriptor (HIDIOCGRDESCSIZE, HIDIOCGRDESC).
func reportDescriptor(f *os.File) ([]byte, error) {
	var size int32
	if err := ioctl(f, ioc(iocRead, nrGetRDescSize, 4), unsafe.Pointer(&size)); err != nil {
		return nil, fmt.Errorf("HIDIOCGRDESCSIZE: %w", err)
	}
	if size <= 0 || size > hiddesc.MaxSize {
		return nil, fmt.Errorf("HIDIOCGRDESCSIZE: size %d out of 1..%d", size, hiddesc.MaxSize)
	}
	// struct hidraw_report_descriptor { __u32 size; __u8 value[HID_MAX_DESCRIPTOR_SIZE]; }
	var rd struct {
		Size  uint32
		Value [hiddesc.MaxSize]byte
	}
	rd.Size = uint32(size)
	if err := ioctl(f, ioc(iocRead, nrGetRDesc, unsafe.Sizeof(rd)), unsafe.Pointer(&rd)); err != nil {
		return nil, fmt.Errorf("HIDIOCGRDESC: %w", err)
	}
	return append([]byte(nil), rd.Value[:size]...), nil
}

// rawInfo reads bus, vendor and product (HIDIOCGRAWINFO).
func rawInfo(f *os.File) (bus, vendor, product uint16, err error) {
	// struct hidraw_devinfo { __u32 bustype; __s16 vendor; __s16 product; }
	var di struct {
		Bus     uint32
		Vendor  uint16
		Product uint16
	}
	if err := ioctl(f, ioc(iocRead, nrGetRawInfo, unsafe.Sizeof(di)), unsafe.Pointer(&di)); err != nil {
		return 0, 0, 0, fmt.Errorf("HIDIOCGRAWINFO: %w", err)
	}
	return uint16(di.Bus), di.Vendor, di.Product, nil
}

// rawName reads the device's name (HIDIOCGRAWNAME).
func rawName(f *os.File) (string, error) {
	buf := make([]byte, 256)
	if err := ioctl(f, ioc(iocRead, nrGetRawName, uintptr(len(buf))), unsafe.Pointer(&buf[0])); err != nil {
		return "", fmt.Errorf("HIDIOCGRAWNAME: %w", err)
	}
	if i := bytes.IndexByte(buf, 0); i >= 0 {
		buf = buf[:i]
	}
	return string(buf), nil
}

// accessible reports whether this process may open path for reading and writing.
func accessible(path string) bool { return syscall.Access(path, 6 /* R_OK|W_OK */) == nil }
