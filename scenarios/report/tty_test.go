package report

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair, the one kind of file that is a terminal in a test.
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
	t.Cleanup(func() { s.Close() })
	return m, s
}

func TestIsTerminal(t *testing.T) {
	t.Parallel()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer devNull.Close()
	fi, err := devNull.Stat()
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&os.ModeCharDevice, "/dev/null is a character device, the case a mode check got wrong")
	r, w, err := os.Pipe()
	require.NoError(t, err)
	defer r.Close()
	defer w.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "out.txt"))
	require.NoError(t, err)
	defer file.Close()
	_, tty := openPTY(t)

	for _, tc := range []struct {
		name string
		w    io.Writer
		want bool
	}{
		{"buffer", &bytes.Buffer{}, false},
		{"/dev/null", devNull, false},
		{"pipe", w, false},
		{"regular file", file, false},
		{"pseudo-terminal", tty, true},
	} {
		require.Equal(t, tc.want, IsTerminal(tc.w), tc.name)
	}
}

func TestColorFor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		terminal bool
		env      map[string]string
		want     bool
	}{
		{true, nil, true},
		{true, map[string]string{"TERM": "xterm-256color"}, true},
		{false, nil, false},
		{true, map[string]string{"NO_COLOR": "1"}, false},
		{true, map[string]string{"NO_COLOR": "0"}, false}, // any non-empty value, per no-color.org
		{true, map[string]string{"NO_COLOR": ""}, true},   // empty means unset
		{true, map[string]string{"TERM": "dumb"}, false},
	} {
		got := colorFor(tc.terminal, func(k string) string { return tc.env[k] })
		require.Equal(t, tc.want, got, "terminal=%v env=%v", tc.terminal, tc.env)
	}
}

func TestUseColorReadsTheEnvironment(t *testing.T) {
	_, tty := openPTY(t)
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	require.True(t, UseColor(tty))
	require.False(t, UseColor(&bytes.Buffer{}))
	t.Setenv("NO_COLOR", "yes")
	require.False(t, UseColor(tty))
}

// A progress display on a terminal rewrites its line; on /dev/null (a character device, not a
// terminal) it must not.
func TestProgressTTYOnlyOnATerminal(t *testing.T) {
	t.Parallel()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	require.NoError(t, err)
	defer devNull.Close()
	require.False(t, NewProgress(devNull, 3).TTY)
	_, tty := openPTY(t)
	require.True(t, NewProgress(tty, 3).TTY)
}
