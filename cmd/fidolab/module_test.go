package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// goCmd runs the go command (go test puts its own GOROOT/bin first in PATH) and returns stdout.
func goCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "go %s: %s", strings.Join(args, " "), stderr.String())
	return stdout.Bytes()
}

// The fidolab binary links no test code: harness/peers keeps its test helpers in peertest.
func TestBinaryDoesNotLinkTesting(t *testing.T) {
	t.Parallel()
	deps := strings.Fields(string(goCmd(t, "list", "-deps", "github.com/fidolab/fidolab/cmd/fidolab")))
	require.Contains(t, deps, "github.com/fidolab/fidolab/harness/peers", "the check must see the whole binary")
	for _, forbidden := range []string{"testing", "github.com/stretchr/testify/require", "github.com/fidolab/fidolab/harness/peers/peertest"} {
		require.NotContains(t, deps, forbidden, "fidolab links %s; move test helpers to a package only tests import", forbidden)
	}
}

// go.mod lists only what fidolab uses: developer tools (the task runner and its cloud SDKs,
// gRPC, OpenTelemetry and TUI libraries) live in tools/go.mod.
func TestGoModListsOnlyWhatFidolabUses(t *testing.T) {
	t.Parallel()
	var mod struct {
		Require []struct {
			Path     string
			Indirect bool
		}
		Tool []struct{ Path string }
	}
	require.NoError(t, json.Unmarshal(goCmd(t, "mod", "edit", "-json", "../../go.mod"), &mod))
	require.Empty(t, mod.Tool, "tools belong in tools/go.mod (go tool -modfile=tools/go.mod NAME)")
	require.NotEmpty(t, mod.Require)

	used := map[string]bool{}
	// Build tags that select more code (gousb: transport/usb through libusb) count as use too.
	for _, tags := range []string{"", "gousb"} {
		for _, m := range strings.Fields(string(goCmd(t, "list", "-tags", tags, "-deps", "-test", "-f", "{{with .Module}}{{.Path}}{{end}}", "github.com/fidolab/fidolab/..."))) {
			used[m] = true
		}
	}
	heavy := []string{"cloud.google.com/", "github.com/aws/", "google.golang.org/grpc", "google.golang.org/api",
		"go.opentelemetry.io/", "github.com/go-task/", "charm.land/", "github.com/charmbracelet/"}
	for _, r := range mod.Require {
		for _, h := range heavy {
			require.False(t, strings.HasPrefix(r.Path, h), "go.mod requires %s, which fidolab does not use", r.Path)
		}
		if !r.Indirect {
			require.True(t, used[r.Path], "go.mod requires %s directly but no package or test of fidolab imports it", r.Path)
		}
	}
}
