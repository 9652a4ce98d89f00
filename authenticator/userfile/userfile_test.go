//go:build unix

package userfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
)

// readWithin runs read and fails the test when it has not returned within a few seconds: a
// reader that blocks on a named pipe would hang `fidolab run` forever.
func readWithin(t *testing.T, read func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	done := make(chan res, 1)
	go func() {
		b, err := read()
		done <- res{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("reading blocked (a named pipe must be refused without waiting for a writer)")
		return nil, nil
	}
}

func TestReadRefusesWhatIsNotARegularFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.yaml")
	require.NoError(t, syscall.Mkfifo(fifo, 0o600))
	link := filepath.Join(dir, "link-to-pipe.yaml")
	require.NoError(t, os.Symlink(fifo, link))

	tests := []struct {
		path, kind string
	}{
		{fifo, "a named pipe"},
		{link, "a named pipe"}, // a link is followed, and what it leads to must be a regular file
		{"/dev/zero", "a character device"},
		{dir, "a directory"},
	}
	for _, tt := range tests {
		_, err := readWithin(t, func() ([]byte, error) { return Read(tt.path, 1<<20) })
		require.ErrorIs(t, err, ErrNotRegular, tt.path)
		require.ErrorContains(t, err, tt.path)
		require.ErrorContains(t, err, tt.kind)
	}
	_, err := Read(filepath.Join(dir, "missing.yaml"), 10)
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestReadLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(f, []byte(strings.Repeat("x", 1024)), 0o600))

	b, err := Read(f, 1024)
	require.NoError(t, err)
	require.Len(t, b, 1024, "a file of exactly the limit is read")

	_, err = Read(f, 1023)
	require.ErrorIs(t, err, ErrTooLarge)
	require.ErrorContains(t, err, "larger than 1023 bytes")
	require.ErrorContains(t, err, f)

	_, err = Read(f, 512)
	require.ErrorContains(t, err, "larger than 512 bytes")
	big := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(big, make([]byte, 2<<20), 0o600))
	_, err = Read(big, 1<<20)
	require.ErrorContains(t, err, "larger than 1 MiB")
}

// DirFS opens a named pipe in a catalog directory without waiting, and ReadFS refuses it.
func TestDirFS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("id: a\n"), 0o600))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "b.yaml"), 0o600))
	fsys := DirFS(dir)

	ents, err := fs.ReadDir(fsys, ".")
	require.NoError(t, err)
	require.Len(t, ents, 2)
	b, err := ReadFS(fsys, "a.yaml", "cat/a.yaml", 100)
	require.NoError(t, err)
	require.Equal(t, "id: a\n", string(b))

	_, err = readWithin(t, func() ([]byte, error) { return ReadFS(fsys, "b.yaml", "cat/b.yaml", 100) })
	require.ErrorIs(t, err, ErrNotRegular)
	require.ErrorContains(t, err, "cat/b.yaml: not a regular file: it is a named pipe")

	_, err = ReadFS(fsys, "a.yaml", "cat/a.yaml", 3)
	require.ErrorIs(t, err, ErrTooLarge)
	_, err = fsys.Open("../etc/passwd")
	require.ErrorIs(t, err, fs.ErrInvalid)
	fi, err := fs.Stat(fsys, "a.yaml")
	require.NoError(t, err)
	require.True(t, fi.Mode().IsRegular())
}

func TestReadFSEmbeddedLike(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"x.yaml": {Data: []byte("hello")}, "d": {Mode: fs.ModeDir}}
	b, err := ReadFS(fsys, "x.yaml", "x.yaml", 5)
	require.NoError(t, err)
	require.Equal(t, "hello", string(b))
	_, err = ReadFS(fsys, "d", "d", 5)
	require.ErrorIs(t, err, ErrNotRegular)
}

func TestSizeAndKind(t *testing.T) {
	t.Parallel()
	require.Equal(t, "64 KiB", Size(64<<10))
	require.Equal(t, "1 MiB", Size(1<<20))
	require.Equal(t, "1000 bytes", Size(1000))
	require.Equal(t, "a socket", Kind(fs.ModeSocket))
	require.Equal(t, "a block device", Kind(fs.ModeDevice))
}
