package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what fidolab's stdout is when a person watches it.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	require.NoError(t, unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0))
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	require.NoError(t, err)
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	require.NoError(t, err)
	return m, s
}

// runOnTerminal runs the CLI with a terminal as stdout and returns what the terminal showed.
func runOnTerminal(t *testing.T, args ...string) (int, string) {
	t.Helper()
	master, tty := openPTY(t)
	shown := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the terminal side is closed
		shown <- b
	}()
	var stderr bytes.Buffer
	code := run(args, tty, &stderr)
	require.NoError(t, tty.Close())
	return code, string(<-shown)
}

// The matrix is coloured on a terminal, unless NO_COLOR asks otherwise; never in a file or on
// /dev/null (a character device but not a terminal).
func TestRunColorsOnlyATerminalWithoutNoColor(t *testing.T) {
	args := []string{"run", "--quiet", "--ascii", "--filter", "req-webauthn-1903"}
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	code, out := runOnTerminal(t, args...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "req-webauthn-1903")
	require.Contains(t, out, "\x1b[", "a terminal gets colours")

	t.Setenv("NO_COLOR", "1")
	code, out = runOnTerminal(t, args...)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "req-webauthn-1903")
	require.NotContains(t, out, "\x1b[", "NO_COLOR=1 turns colours off")

	t.Setenv("NO_COLOR", "")
	f, err := os.Create(t.TempDir() + "/out.txt")
	require.NoError(t, err)
	require.Equal(t, 0, run(args, f, io.Discard))
	require.NoError(t, f.Close())
	b, err := os.ReadFile(f.Name())
	require.NoError(t, err)
	require.NotContains(t, string(b), "\x1b[", "a file gets no colours")
}
