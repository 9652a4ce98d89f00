package peers

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fidolab/fidolab/authenticator/persona"
)

// Libfido2Install is the hint printed when the libfido2 peer cannot be built.
const Libfido2Install = "apt-get install gcc libc6-dev libfido2-dev (Debian/Ubuntu)"

//go:embed csrc/*.c csrc/*.h
var libfido2Src embed.FS

var (
	buildMu    sync.Mutex
	buildCache = map[string]buildResult{}
)

type buildResult struct {
	bin string
	err error
}

// BuildLibfido2 compiles the libfido2 client into dir with the system's gcc and libfido2-dev
// and returns the binary's path. A build is done once per dir for the life of the process.
// When gcc or libfido2's headers or library are missing the error wraps ErrMissing.
func BuildLibfido2(dir string) (string, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	if r, ok := buildCache[dir]; ok {
		return r.bin, r.err
	}
	bin, err := buildLibfido2(dir)
	buildCache[dir] = buildResult{bin, err}
	return bin, err
}

func buildLibfido2(dir string) (string, error) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", fmt.Errorf("libfido2 peer: %w: gcc not found (%s)", ErrMissing, Libfido2Install)
	}
	src := filepath.Join(dir, "libfido2-src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", fmt.Errorf("libfido2 peer: %w", err)
	}
	var files []string
	err = fs.WalkDir(libfido2Src, "csrc", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := libfido2Src.ReadFile(p)
		if err != nil {
			return err
		}
		out := filepath.Join(src, filepath.Base(p))
		if strings.HasSuffix(p, ".c") {
			files = append(files, out)
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("libfido2 peer: writing sources: %w", err)
	}
	bin := filepath.Join(dir, "fidolab_libfido2")
	args := append([]string{"-std=c11", "-D_GNU_SOURCE", "-O1", "-Wall", "-Wextra", "-Werror", "-o", bin},
		files...)
	args = append(args, "-lfido2", "-lcrypto")
	cmd := exec.Command(gcc, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := out.String()
		if strings.Contains(msg, "fido.h: No such file") || strings.Contains(msg, "cannot find -lfido2") ||
			strings.Contains(msg, "cannot find -lcrypto") || strings.Contains(msg, "stdio.h: No such file") {
			return "", fmt.Errorf("libfido2 peer: %w: %s (%s)", ErrMissing, firstLine(msg), Libfido2Install)
		}
		return "", fmt.Errorf("libfido2 peer: gcc: %v\n%s", err, msg)
	}
	return bin, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Libfido2Options tune RunLibfido2.
type Libfido2Options struct {
	// Persona is what the key claims to be; the client's expectations (which operations must
	// pass, which must fail the way libfido2 expects) come from it. Nil loads the built-in
	// persona of the name given to RunLibfido2.
	Persona *persona.Persona
	// Replug power-cycles the key; it is called just before the reset run, because reset is
	// only allowed within seconds of power-up. Nil skips the reset run.
	Replug func() error
	// Timeout bounds each client run (default 3 minutes); the client also has per-operation
	// timeouts and a watchdog of its own.
	Timeout time.Duration
}

// RunLibfido2 runs the libfido2 client bin against the key on the Unix socket sockPath and
// returns its rows. The key must be fresh (no PIN, no credentials): the client sets a PIN and
// makes credentials. The error reports a client that could not run or did not finish; rows
// that ran before are still returned.
func RunLibfido2(ctx context.Context, bin, sockPath, personaName string, opts Libfido2Options) ([]Row, error) {
	p := opts.Persona
	if p == nil {
		var err error
		if p, err = persona.Builtin(personaName); err != nil {
			return nil, err
		}
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Minute
	}
	args := libfido2Args(p, sockPath, personaName)
	rows, err := runClient(ctx, timeout, bin, append(args, "--mode", "main"))
	if err != nil || opts.Replug == nil {
		return rows, err
	}
	if err := opts.Replug(); err != nil {
		return rows, fmt.Errorf("libfido2 peer: replug before reset: %w", err)
	}
	more, err := runClient(ctx, timeout, bin, append(args, "--mode", "reset"))
	return append(rows, more...), err
}

// libfido2Args turns a persona into the client's expectations.
func libfido2Args(p *persona.Persona, sockPath, name string) []string {
	var f []string
	add := func(on bool, name string) {
		if on {
			f = append(f, name)
		}
	}
	add(p.CTAP2, "ctap2")
	add(p.CTAP2 && p.ClientPIN, "pin")
	add(p.CTAP2 && p.ResidentKeys, "rk")
	add(p.CTAP2 && p.HasExtension("credProtect"), "credProtect")
	add(p.CTAP2 && p.HasExtension("hmac-secret"), "hmac-secret")
	// libfido2 1.12 sends only the preview credentialManagement command (0x41): a key that
	// answers only 0x0A is, to it, a key without credential management.
	add(p.CTAP2 && p.CredMgmtPre, "credMgmt")
	add(p.CTAP2 && p.LargeBlobs && p.HasExtension("largeBlobKey"), "largeBlobs")
	add(p.CTAP2 && p.Config, "config")
	// libfido2 1.12 speaks only the preview bio command (0x40).
	add(p.CTAP2 && p.BuiltInUV && p.BioEnrollPre, "bio")
	add(p.U2F, "u2f")
	add(p.CTAP2 && slices.Contains(p.Algorithms, -8), "eddsa")
	add(p.CTAP2 && p.PinUvAuthToken, "pinUvAuthToken")
	add(p.CTAP2 && p.MakeCredUVNotRqd, "makeCredUvNotRqd")
	aaguid := strings.ReplaceAll(p.AAGUID.String(), "-", "")
	return []string{
		"--socket", sockPath, "--persona", name, "--aaguid", aaguid,
		"--versions", strings.Join(p.Versions, ","), "--features", strings.Join(f, ","),
		"--min-pin", strconv.Itoa(p.MinPINLength), "--rk-capacity", strconv.Itoa(p.ResidentCapacity),
	}
}

func runClient(ctx context.Context, timeout time.Duration, bin string, args []string) ([]Row, error) {
	return runPeer(ctx, "libfido2 peer", timeout, nil, bin, args...)
}

// runPeer runs a peer program that prints its results as JSON rows on stdout, for at most timeout.
// Rows printed before a failure are returned with the error.
func runPeer(ctx context.Context, name string, timeout time.Duration, env []string, bin string, args ...string) ([]Row, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	rows, parseErr := ParseRows(&stdout)
	switch {
	case ctx.Err() != nil:
		return rows, fmt.Errorf("%s: killed after %v: %w (stderr: %s)", name, timeout, ctx.Err(), tail(stderr.String()))
	case runErr != nil:
		return rows, fmt.Errorf("%s: %w (stderr: %s)", name, runErr, tail(stderr.String()))
	case parseErr != nil:
		return rows, parseErr
	}
	return rows, nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2000 {
		s = "…" + s[len(s)-2000:]
	}
	return s
}
