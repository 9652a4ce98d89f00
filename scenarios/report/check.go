package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// markers are what the start of a report fidolab wrote contains, by format: CheckPath lets
// WriteFile replace such a file, and no other.
var markers = map[string][]byte{
	".xml":  []byte(`<testsuites name="fidolab`),
	".json": []byte(`"generator": "fidolab"`),
	".html": []byte(`<title>fidolab run:`),
	".htm":  []byte(`<title>fidolab run:`),
	".md":   []byte(`## fidolab run:`),
}

// CheckPath says, before a run, whether WriteFile will be able to write a report to path, so that
// a mistake costs no run: the extension must name a format (Formats), the directory must exist
// and take a new file, and path must not be a directory or a file of the user's — an existing
// file is replaced only when it is a report fidolab wrote (or empty).
func CheckPath(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	marker, ok := markers[ext]
	if !ok {
		if ext == "" {
			return fmt.Errorf("%s: no extension to pick the format by (want %s)", path, strings.Join(Formats, ", "))
		}
		return fmt.Errorf("%s: unknown format %q (want %s)", path, ext, strings.Join(Formats, ", "))
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: the directory %s: %w", path, dir, errors.Unwrap(err))
	} else if !fi.IsDir() {
		return fmt.Errorf("%s: %s is not a directory", path, dir)
	}
	// WriteFile writes a temporary file in the directory and renames it: try exactly that.
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return fmt.Errorf("%s: cannot write in %s: %w", path, dir, errors.Unwrap(err))
	}
	tmp.Close()
	os.Remove(tmp.Name())

	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s exists and is not a regular file", path)
	case fi.Size() == 0:
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	head := make([]byte, 1024)
	n, _ := io.ReadFull(f, head)
	if !bytes.Contains(head[:n], marker) {
		return fmt.Errorf("%s exists and is not a %s report fidolab wrote: choose another name, or remove it first", path, ext)
	}
	return nil
}
