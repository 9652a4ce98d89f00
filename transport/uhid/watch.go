package uhid

import (
	"os"
	"syscall"
	"time"
)

// dirWatch wakes a waiter when an entry is created in a directory (inotify IN_CREATE), so the
// hidraw node is noticed the moment devtmpfs makes it, without polling. Where inotify fails it
// degrades to sleeping.
type dirWatch struct {
	f   *os.File
	buf []byte
}

func watchDir(dir string) *dirWatch {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return &dirWatch{}
	}
	if _, err := syscall.InotifyAddWatch(fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO); err != nil {
		syscall.Close(fd)
		return &dirWatch{}
	}
	return &dirWatch{f: os.NewFile(uintptr(fd), "inotify"), buf: make([]byte, 4096)}
}

// Wait returns after the next event (the ones queued meanwhile included) or after d.
func (w *dirWatch) Wait(d time.Duration) {
	if w.f == nil {
		time.Sleep(min(d, 2*time.Millisecond))
		return
	}
	_ = w.f.SetReadDeadline(time.Now().Add(d))
	_, _ = w.f.Read(w.buf)
}

func (w *dirWatch) Close() {
	if w.f != nil {
		w.f.Close()
	}
}
