package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
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
	return goBuild(ctx, pkg, "build")
}

// GoTestBinary compiles the tests of package pkg (go test -c) as a static linux/amd64
// executable, once per process, and returns its path: a package's tests that need the guest's
// kernel (/dev/uhid, configfs, a UDC) run in the guest with `pkg.test -test.run …`.
func GoTestBinary(ctx context.Context, pkg string) (string, error) {
	return goBuild(ctx, pkg, "test")
}

func goBuild(ctx context.Context, pkg, verb string) (string, error) {
	goBuildMu.Lock()
	defer goBuildMu.Unlock()
	key := verb + " " + pkg
	if p, ok := goBuilt[key]; ok {
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
	args := []string{"build", "-o", out, pkg}
	if verb == "test" {
		args = []string{"test", "-c", "-o", out, pkg}
	}
	cmd := exec.CommandContext(ctx, goCommand(), args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("vm: go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	goBuilt[key] = out
	return out, nil
}

// goCommand is the go command on PATH (go test puts the toolchain's own GOROOT/bin first), else
// the one in GOROOT when the environment names it.
func goCommand() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}

// TestBinary returns a File that puts the static test binary of pkg (see GoTestBinary) at
// /usr/bin/NAME.test in the guest, NAME being the last element of pkg.
func TestBinary(ctx context.Context, pkg string) (File, error) {
	p, err := GoTestBinary(ctx, pkg)
	if err != nil {
		return File{}, err
	}
	return File{Path: "/usr/bin/" + path.Base(pkg) + ".test", Mode: 0o755, Source: p}, nil
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
