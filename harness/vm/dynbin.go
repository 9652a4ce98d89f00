package vm

import (
	"fmt"
	"path/filepath"
)

// DynamicBinary returns the Files that put the dynamically linked host executable src at guestPath,
// with its dynamic loader and every shared library it needs at the paths the host has them (a cgo
// test binary and its libusb, say). Libraries the base image already carries are simply replaced
// by the same files.
func DynamicBinary(src, guestPath string) ([]File, error) {
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	libs, err := sharedLibs(abs)
	if err != nil {
		return nil, fmt.Errorf("vm: libraries of %s: %w", src, err)
	}
	files := []File{{Path: guestPath, Mode: 0o755, Source: abs}}
	for _, l := range libs {
		files = append(files, File{Path: l, Mode: 0o755, Source: l})
	}
	return files, nil
}
