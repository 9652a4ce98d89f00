package vm

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// cpioWriter writes the "newc" (SVR4, no CRC) cpio format the kernel's initramfs unpacker reads.
// Archives written one after another may be concatenated: the kernel unpacks them in order and a
// later file replaces an earlier one at the same path.
type cpioWriter struct {
	w    *bufio.Writer
	n    int64 // bytes written, for padding
	ino  uint32
	dirs map[string]bool // directories already written, so parents are emitted once
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<16), ino: 1, dirs: map[string]bool{".": true, "/": true}}
}

// cpio mode type bits (the same values as stat(2)'s S_IF*).
const (
	cpioTypeMask = 0o170000
	cpioDir      = 0o040000
	cpioRegular  = 0o100000
	cpioSymlink  = 0o120000
)

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	m, err := c.w.Write(b)
	c.n += int64(m)
	c.err = err
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one header, name and body. name is relative to the archive root ("bin/sh").
func (c *cpioWriter) entry(name string, mode uint32, body []byte) {
	c.ino++
	nlink := 1
	if mode&cpioTypeMask == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(body), 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
	c.write(body)
	c.pad()
}

// clean turns a guest path ("/usr/bin/x", "usr/bin/x") into an archive name ("usr/bin/x").
func clean(p string) (string, error) {
	name := strings.TrimPrefix(path.Clean("/"+p), "/")
	if name == "" || name == "." {
		return "", fmt.Errorf("cpio: empty path %q", p)
	}
	return name, nil
}

// Mkdir writes a directory and any parents not yet written.
func (c *cpioWriter) Mkdir(p string) error {
	name, err := clean(p)
	if err != nil {
		return err
	}
	c.mkdirAll(name)
	return c.err
}

func (c *cpioWriter) mkdirAll(name string) {
	if c.dirs[name] {
		return
	}
	if parent := path.Dir(name); parent != "." {
		c.mkdirAll(parent)
	}
	c.dirs[name] = true
	c.entry(name, cpioDir|0o755, nil)
}

// File writes a regular file (with its parent directories).
func (c *cpioWriter) File(p string, perm fs.FileMode, body []byte) error {
	name, err := clean(p)
	if err != nil {
		return err
	}
	if parent := path.Dir(name); parent != "." {
		c.mkdirAll(parent)
	}
	c.entry(name, cpioRegular|uint32(perm.Perm()), body)
	return c.err
}

// Symlink writes a symbolic link p → target (with p's parent directories).
func (c *cpioWriter) Symlink(p, target string) error {
	name, err := clean(p)
	if err != nil {
		return err
	}
	if parent := path.Dir(name); parent != "." {
		c.mkdirAll(parent)
	}
	c.entry(name, cpioSymlink|0o777, []byte(target))
	return c.err
}

// Close writes the trailer and flushes; it does not close the underlying writer.
func (c *cpioWriter) Close() error {
	c.entry("TRAILER!!!", 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}
