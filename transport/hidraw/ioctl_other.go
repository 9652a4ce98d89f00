//go:build !linux

package hidraw

import (
	"errors"
	"os"
)

var errNotLinux = errors.New("hidraw nodes exist on Linux only")

func reportDescriptor(*os.File) ([]byte, error)        { return nil, errNotLinux }
func rawInfo(*os.File) (uint16, uint16, uint16, error) { return 0, 0, 0, errNotLinux }
func rawName(*os.File) (string, error)                 { return "", errNotLinux }
func accessible(string) bool                           { return false }
