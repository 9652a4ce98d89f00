//go:build unix

package catalog

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loadWithin is LoadDir that fails the test instead of hanging.
func loadWithin(t *testing.T, dir string) (*Catalog, error) {
	t.Helper()
	type res struct {
		c   *Catalog
		err error
	}
	done := make(chan res, 1)
	go func() { c, err := LoadDir(dir); done <- res{c, err} }()
	select {
	case r := <-done:
		return r.c, r.err
	case <-time.After(10 * time.Second):
		t.Fatal("LoadDir blocked (on a named pipe?)")
		return nil, nil
	}
}

// A named pipe in a catalog directory used to hang `fidolab run` forever, waiting for a writer;
// a device was read to the end (/dev/zero: until memory ran out). Both are errors naming the file.
func TestLoadDirReadsOnlyRegularFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(minimal), 0o600))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "pipe.yaml"), 0o600))
	require.NoError(t, os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")))
	_, err := loadWithin(t, dir)
	require.ErrorContains(t, err, filepath.Join(dir, "pipe.yaml")+": not a regular file: it is a named pipe")
	require.ErrorContains(t, err, filepath.Join(dir, "zero.yaml")+": not a regular file: it is a character device")

	// A persona file beside the scenarios follows the same rule.
	dir = t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "p"), 0o700))
	require.NoError(t, syscall.Mkfifo(filepath.Join(dir, "p", "k.yaml"), 0o600))
	body := strings.Replace(minimal, "key:\n", "key:\n  persona: p/k.yaml\n", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(body), 0o600))
	_, err = loadWithin(t, dir)
	require.ErrorContains(t, err, "key.persona: persona file: "+filepath.Join(dir, "p", "k.yaml")+": not a regular file: it is a named pipe")
}

// Problems of a whole file say no line (they used to say line 0, or line 1 of an empty file).
func TestWholeFileErrorsHaveNoLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	require.NoError(t, os.WriteFile(big, []byte(strings.Repeat("# padding\n", maxFileSize/10+1)), 0o600))
	_, err := LoadDir(dir)
	require.EqualError(t, err, big+": file too large: larger than 1 MiB")
	require.NoError(t, os.Remove(big))

	_, err = Parse(make([]byte, maxFileSize+1), "huge.yaml", nil)
	require.EqualError(t, err, "huge.yaml: larger than 1 MiB: not a scenario file")
	for _, body := range []string{"", "# only a comment\n", "---\n"} {
		_, err = Parse([]byte(body), "empty.yaml", nil)
		require.EqualError(t, err, "empty.yaml: no scenario in the file (an empty file, or only comments)", "%q", body)
	}
	require.Equal(t, "f.yaml: x", (&Error{File: "f.yaml", Msg: "x"}).Error())
	require.Equal(t, "f.yaml:3: id: x", (&Error{File: "f.yaml", Line: 3, Field: "id", Msg: "x"}).Error())
}
