package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
)

var (
	goBuildMu  sync.Mutex
	goBuildDir string
	goBuilt    = map[string]string{}
)

// GoBinary builds the Go main package pkg (an import path such as
// "github.com/fidolab/fidolab/cmd/fidolab", or a path relative to the current directory) as a
// static linux/amd64 executable (CGO_ENABLED=0), once per process, and returns its path. The go
// command's build cache makes a rebuild after an unrelated change take about a second.
func GoBinary(ctx context.Context, pkg string) (string, error) {
	goBuildMu.Lock()
	defer goBuildMu.Unlock()
	if p, ok := goBuilt[pkg]; ok {
		return p, nil
	}
	if goBuildDir == "" {
		d, err := binDir()
		if err != nil {
			return "", err
		}
		goBuildDir = d
	}
	out := filepath.Join(goBuildDir, fmt.Sprintf("%d-%s", len(goBuilt), path.Base(pkg)))
	cmd := exec.CommandContext(ctx, goCommand(), "build", "-trimpath", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vm: go build %s: %w\n%s", pkg, err, b)
	}
	goBuilt[pkg] = out
	return out, nil
}

// goCommand is the go command of the toolchain running this process (go test puts its GOROOT/bin
// first in PATH; the fallback covers a binary built by go build).
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// Binary returns a File that puts the static build of pkg (see GoBinary) at /usr/bin/NAME in the
// guest, NAME being the last element of pkg.
func Binary(ctx context.Context, pkg string) (File, error) {
	p, err := GoBinary(ctx, pkg)
	if err != nil {
		return File{}, err
	}
	return File{Path: "/usr/bin/" + path.Base(pkg), Mode: 0o755, Source: p}, nil
}

// binDir is this process's directory for built binaries: CACHE/gobin/PID. Directories of processes
// that no longer run are removed on the way (a test binary has no hook to clean up at exit).
func binDir() (string, error) {
	cache, err := Options{}.cacheDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(cache, "gobin")
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || syscall.Kill(pid, 0) == syscall.ESRCH {
				_ = os.RemoveAll(filepath.Join(root, e.Name()))
			}
		}
	}
	d := filepath.Join(root, strconv.Itoa(os.Getpid()))
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", err
	}
	return d, nil
}
