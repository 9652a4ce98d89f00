// Package userfile reads the files a user hands fidolab — persona files, scenario catalogs, event
// logs — by one rule: only a regular file, never more than a stated size, and never blocking on
// what is not a file. A named pipe, a device (/dev/zero, a terminal), a socket or a directory where
// a file was expected is an error naming the file and what it is, found without reading from it.
//
// Every loader of user files goes through Read (a path) or ReadFS (a file of an fs.FS, with DirFS
// for a directory on disk), so a new loader gets the rule by calling them.
package userfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotRegular is wrapped by the error for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped by the error for a file larger than its limit.
var ErrTooLarge = errors.New("file too large")

// Read returns the contents of the regular file at path, refusing anything else and any file
// larger than limit bytes. Opening never blocks: a named pipe without a writer is refused at once.
func Read(path string, limit int64) ([]byte, error) {
	f, err := open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, path, limit)
}

// ReadFS is Read for a file of fsys. Use DirFS for a directory on disk: os.DirFS would block
// opening a named pipe. Files of an embed.FS are always regular.
func ReadFS(fsys fs.FS, name, display string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, display, limit)
}

func readLimited(f fs.File, display string, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := Regular(fi); err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	if fi.Size() > limit {
		return nil, tooLarge(display, limit)
	}
	// The size may grow between Stat and reading (a log being written): never read past limit.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(display, limit)
	}
	return b, nil
}

func tooLarge(display string, limit int64) error {
	return fmt.Errorf("%s: %w: larger than %s", display, ErrTooLarge, Size(limit))
}

// Regular returns nil for a regular file and an error wrapping ErrNotRegular that says what fi is
// otherwise.
func Regular(fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%w: it is %s", ErrNotRegular, Kind(fi.Mode()))
}

// Kind names a file mode's type for a person: "a named pipe", "a character device".
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return "not a regular file"
}

// Size formats a byte limit for messages: 64 KiB, 1 MiB, 512 bytes.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// DirFS is a directory on disk as an fs.FS whose Open never blocks: a named pipe or device in it
// opens without waiting (and ReadFS then refuses it), unlike os.DirFS.
func DirFS(dir string) fs.FS { return dirFS(dir) }

type dirFS string

func (d dirFS) join(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	return filepath.Join(string(d), filepath.FromSlash(name)), nil
}

// Open opens name without blocking.
func (d dirFS) Open(name string) (fs.File, error) {
	p, err := d.join("open", name)
	if err != nil {
		return nil, err
	}
	f, err := open(p)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// ReadDir lists a directory, as fs.ReadDirFS.
func (d dirFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := d.join("readdir", name)
	if err != nil {
		return nil, err
	}
	return os.ReadDir(p)
}

// Stat describes name, following symbolic links, as fs.StatFS.
func (d dirFS) Stat(name string) (fs.FileInfo, error) {
	p, err := d.join("stat", name)
	if err != nil {
		return nil, err
	}
	return os.Stat(p)
}

// open opens path for reading with O_NONBLOCK where the system has it, so that opening a named
// pipe nobody writes to returns at once instead of waiting for a writer. Reading a regular file
// is not affected by the flag.
func open(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
}
