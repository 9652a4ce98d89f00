package report

import (
	"io"
	"os"

	xterm "golang.org/x/term"
)

// IsTerminal reports whether w is a terminal, where rewriting a line with \r makes sense. Only a
// file that answers a terminal's ioctl is one: /dev/null and other character devices are not.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && xterm.IsTerminal(int(f.Fd()))
}

// UseColor reports whether output to w should carry ANSI colours: w is a terminal, NO_COLOR is
// unset or empty (https://no-color.org), and TERM is not "dumb".
func UseColor(w io.Writer) bool { return colorFor(IsTerminal(w), os.Getenv) }

func colorFor(terminal bool, getenv func(string) string) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}
