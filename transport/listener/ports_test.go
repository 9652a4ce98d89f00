package listener

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// fixedPort finds a quoted host:port with a port other than 0 on this machine's addresses (or no
// host): a test that listens there fails whenever something else holds the port.
var fixedPort = regexp.MustCompile(`(?:^|[^\w"])"(?:tcp:|unix:|https?://)?(?:127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1?\])?:[1-9][0-9]{1,4}\b`)

// TestNoFixedPortsInTests keeps every test in the module on :0 or unix sockets
// (cmd/fidolab's serve test once bound 127.0.0.1:18765 and failed when anything else held it).
func TestNoFixedPortsInTests(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "module root")
	var found []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") || path == filepath.Join(root, "transport", "listener", "ports_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := fixedPort.FindString(line); m != "" {
				rel, _ := filepath.Rel(root, path)
				found = append(found, rel+":"+strconv.Itoa(i+1)+": "+m)
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, found, "tests bind :0 or a unix socket, never a fixed port")
}
