package report

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A report path that cannot work is refused before the run: an unknown extension, a missing or
// read-only directory, a directory, a file that is not a fidolab report (WriteFile would replace
// it). A report fidolab wrote may be written again.
func TestCheckPath(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	run := fixtureRun()
	for _, ext := range Formats {
		p := filepath.Join(dir, "r"+ext)
		require.NoError(t, CheckPath(p), "a new file")
		require.NoError(t, WriteFile(p, run))
		require.NoError(t, CheckPath(p), "a report fidolab wrote can be replaced: %s", ext)
	}
	mine := filepath.Join(dir, "README.md")
	require.NoError(t, os.WriteFile(mine, []byte("# My project\n"), 0o644))
	empty := filepath.Join(dir, "empty.xml")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	require.NoError(t, CheckPath(empty), "an empty file holds nothing to lose")
	ro := filepath.Join(dir, "ro")
	require.NoError(t, os.Mkdir(ro, 0o500))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "d.json"), 0o700))

	for path, want := range map[string]string{
		filepath.Join(dir, "r.txt"):             `unknown format ".txt" (want .xml, .json, .html, .htm, .md)`,
		filepath.Join(dir, "report"):            "no extension to pick the format by",
		filepath.Join(dir, "missing", "r.json"): "the directory " + filepath.Join(dir, "missing") + ": no such file or directory",
		filepath.Join(dir, "r.json", "x.json"):  "is not a directory",
		filepath.Join(dir, "d.json"):            "exists and is not a regular file",
		mine:                                    "README.md exists and is not a .md report fidolab wrote: choose another name, or remove it first",
	} {
		require.ErrorContains(t, CheckPath(path), want, path)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		require.ErrorContains(t, CheckPath(filepath.Join(ro, "r.xml")), "cannot write in "+ro+": permission denied")
	}
	// A directory nobody can create files in, root included.
	require.ErrorContains(t, CheckPath("/proc/r.xml"), "cannot write in /proc")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NotContains(t, e.Name(), ".check-", "the check leaves nothing behind")
	}
}
