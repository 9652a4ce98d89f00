//go:build !unix

package userfile

// openNonblock is 0 where opening a named pipe has no non-blocking form.
const openNonblock = 0
