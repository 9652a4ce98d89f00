//go:build unix

package userfile

import "syscall"

const openNonblock = syscall.O_NONBLOCK
