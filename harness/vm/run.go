package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const qemuBinary = "qemu-system-x86_64"

// DefaultTimeout bounds a run whose Config sets no Timeout.
const DefaultTimeout = 2 * time.Minute

// Config describes one guest run.
type Config struct {
	// Script is a POSIX shell script (busybox ash) run as root in the guest as /test.sh, with the
	// helpers of guest/lib.sh defined (die, wait_for, wait_gone, hidraw_of, wait_hidraw,
	// modprobe_all). Its exit status is Result.ExitCode.
	Script string
	// Files are added to the guest's root filesystem (replacing a base file at the same path).
	Files []File
	// Env is exported to Script.
	Env map[string]string
	// QEMUArgs are appended to QEMU's command line, e.g. a usb-redir device:
	//   -device qemu-xhci,id=xhci -chardev socket,id=ur0,path=SOCK -device usb-redir,chardev=ur0,bus=xhci.0
	QEMUArgs []string
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// Timeout bounds the run once a VM slot is taken (the boot included); 0 means DefaultTimeout.
	Timeout time.Duration
	// MemoryMB is the guest's memory; 0 means 512.
	MemoryMB int
	// Console, when set, receives the serial console as it is printed (e.g. a test's log writer).
	Console io.Writer
	// Verbose keeps the kernel's boot messages on the console (no "quiet").
	Verbose bool
	// HostCalls are what the guest script may ask the host to do while it runs: `host_call NAME`
	// in the script runs HostCalls[NAME] on the host and returns when it has, with status 0 if it
	// returned nil (1 otherwise, and 127 for an unknown NAME). For example, unplugging the key
	// through a host-side control API at a precise point of the script.
	HostCalls map[string]func(ctx context.Context) error
	// Interactive connects the console to this process's terminal (stdin too): for a shell in
	// the guest, by hand. Console then gets nothing and Log stays empty.
	Interactive bool
	// Options select the image (cache directory, kernel package).
	Options Options
}

// File is one file placed into the guest: its contents are Data, or the host file Source.
type File struct {
	Path   string      // absolute path in the guest
	Mode   fs.FileMode // permission bits; 0 means 0644 (0755 when Source is executable)
	Data   []byte
	Source string
}

// Result is what a guest run produced.
type Result struct {
	// ExitCode is Script's exit status.
	ExitCode int
	// Log is the serial console: the kernel's messages and everything Script printed.
	Log string
	// Boot is the time from starting QEMU to the guest's /init running its first line.
	Boot time.Duration
	// Total is the time from starting QEMU to its exit.
	Total time.Duration
	// Wait is how long the run waited for a free VM slot before QEMU started.
	Wait time.Duration
}

// Slots returns how many guests may run at once on this machine, across processes: the
// environment variable FIDOLAB_VM_JOBS, else the number of CPUs. A TCG guest keeps one CPU busy
// while it boots; more guests than CPUs only make each slower (and closer to its timeout).
func Slots() int {
	if n, err := strconv.Atoi(os.Getenv("FIDOLAB_VM_JOBS")); err == nil && n > 0 {
		return n
	}
	return max(runtime.NumCPU(), 1)
}

// Run boots a guest, runs cfg.Script in it and returns its exit status and console. An error
// means the guest produced no status: QEMU failed to start, the kernel panicked, the timeout or
// ctx ended the run (Result.Log then holds what the console showed so far). A script that fails
// is not an error: its status is in Result.ExitCode.
func Run(ctx context.Context, cfg Config) (Result, error) {
	img, err := Prepare(ctx, cfg.Options)
	if err != nil {
		return Result{}, err
	}
	return img.Run(ctx, cfg)
}

// Run boots img with cfg; see the package function Run.
func (img *Image) Run(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	dir, err := os.MkdirTemp("", "fidolab-vm-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	token := randomToken()
	initrd := filepath.Join(dir, "initrd.cpio")
	if err := writeInitrd(initrd, img.Initramfs, cfg, token); err != nil {
		return res, err
	}
	cacheDir, err := cfg.Options.cacheDir()
	if err != nil {
		return res, err
	}
	waitStart := time.Now()
	release, err := takeSlot(ctx, filepath.Join(cacheDir, "slots"), Slots())
	if err != nil {
		return res, err
	}
	defer release()
	res.Wait = time.Since(waitStart)

	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	args := img.qemuArgs(cfg, initrd)
	cmd := exec.CommandContext(rctx, qemuBinary, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a killed test
	console := &consoleBuffer{live: cfg.Console, marker: []byte("fidolab-vm: init ")}
	var qerr bytes.Buffer
	cmd.Stdout = console
	cmd.Stderr = &qerr
	if cfg.Interactive {
		cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	} else {
		// The serial line's other direction: replies to host_call.
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return res, err
		}
		hc := &hostCalls{ctx: rctx, token: token, calls: cfg.HostCalls, reply: stdin}
		console.onLine = hc.line
		defer hc.wait()
	}
	start := time.Now()
	console.start = start
	err = cmd.Run()
	res.Total = time.Since(start)
	res.Log = console.String()
	res.Boot = console.bootTime()

	code, reported := exitFromLog(res.Log, token)
	if reported {
		res.ExitCode = code
		return res, nil
	}
	// Not on the console (it can be lost when QEMU is killed mid-line): the debug-exit device.
	var ee *exec.ExitError
	if errors.As(err, &ee) && rctx.Err() == nil {
		if st := ee.ExitCode(); st > 0 && st&1 == 1 {
			res.ExitCode = st >> 1
			return res, nil
		}
	}
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("vm: run cancelled: %w", ctx.Err())
	case rctx.Err() != nil:
		return res, fmt.Errorf("vm: guest timed out after %v (console ends: %s)", timeout, tail(res.Log, 400))
	case err != nil:
		return res, fmt.Errorf("vm: %s: %w: %s (console ends: %s)", qemuBinary, err, strings.TrimSpace(qerr.String()), tail(res.Log, 400))
	default:
		return res, fmt.Errorf("vm: guest ended without reporting a status (console ends: %s)", tail(res.Log, 400))
	}
}

// qemuArgs is the QEMU command line: q35 under TCG, one CPU, the PVH kernel, the serial console on
// stdout, isa-debug-exit for the status, nothing else unless cfg adds it.
func (img *Image) qemuArgs(cfg Config, initrd string) []string {
	mem := cfg.MemoryMB
	if mem <= 0 {
		mem = 512
	}
	kargs := []string{"console=ttyS0", "panic=-1", "oops=panic", "mitigations=off", "cryptomgr.notests=1",
		"initcall_blacklist=crypto_kdf108_init,load_system_certificate_list,apparmor_nf_ip_init"}
	if !cfg.Verbose {
		kargs = append(kargs, "quiet", "loglevel=3")
	}
	kargs = append(kargs, cfg.KernelArgs...)
	args := []string{
		"-M", "q35", "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(mem),
		"-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-kernel", img.Kernel, "-initrd", initrd,
		"-append", strings.Join(kargs, " "),
	}
	return append(args, cfg.QEMUArgs...)
}

// writeInitrd writes the base initramfs followed by this run's archive: /test.sh, the env file
// and cfg.Files. The kernel unpacks both; later files replace earlier ones.
func writeInitrd(dst, base string, cfg Config, token string) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	in, err := os.Open(base)
	if err != nil {
		return fmt.Errorf("vm: base initramfs: %w", err)
	}
	_, err = io.Copy(out, in)
	in.Close()
	if err != nil {
		return err
	}
	w := newCPIOWriter(out)
	var env strings.Builder
	fmt.Fprintf(&env, "export FIDOLAB_VM_TOKEN=%s\n", token)
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		if !regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`).MatchString(k) {
			return fmt.Errorf("vm: environment variable name %q", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&env, "export %s=%s\n", k, shellQuote(cfg.Env[k]))
	}
	if err := w.File("/etc/fidolab-vm.env", 0o644, []byte(env.String())); err != nil {
		return err
	}
	if err := w.File("/test.sh", 0o755, []byte(cfg.Script)); err != nil {
		return err
	}
	for _, f := range cfg.Files {
		if !strings.HasPrefix(f.Path, "/") {
			return fmt.Errorf("vm: guest file path %q is not absolute", f.Path)
		}
		data, mode := f.Data, f.Mode
		if f.Source != "" {
			if data, err = os.ReadFile(f.Source); err != nil {
				return fmt.Errorf("vm: guest file %s: %w", f.Path, err)
			}
			if fi, err := os.Stat(f.Source); err == nil && mode == 0 && fi.Mode()&0o111 != 0 {
				mode = 0o755
			}
		}
		if mode == 0 {
			mode = 0o644
		}
		if err := w.File(f.Path, mode, data); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	return out.Close()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// exitFromLog finds init's "fidolab-vm: exit TOKEN N" line. The token is random per run, so a
// script printing a similar line cannot forge the status.
func exitFromLog(log, token string) (int, bool) {
	m := regexp.MustCompile(`fidolab-vm: exit ` + regexp.QuoteMeta(token) + ` (\d+)`).FindStringSubmatch(log)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strconv.Quote(s)
}

// consoleBuffer collects the serial console, copies it to live, notes when init first spoke, and
// hands every complete line to onLine.
type consoleBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	live    io.Writer
	marker  []byte
	start   time.Time
	boot    time.Duration
	onLine  func(line string)
	scanned int  // bytes of buf already handed to onLine
	cr      bool // the last write ended with a CR, held back
}

func (c *consoleBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := len(p)
	// The serial console ends lines with CR LF. A CR that ends a write waits for the next one:
	// a CR LF split across two writes is a line end too.
	if c.cr {
		p = append([]byte{'\r'}, p...)
		c.cr = false
	}
	p = bytes.ReplaceAll(p, []byte("\r\n"), []byte("\n"))
	if len(p) > 0 && p[len(p)-1] == '\r' {
		c.cr, p = true, p[:len(p)-1]
	}
	c.buf.Write(p)
	if c.boot == 0 && bytes.Contains(c.buf.Bytes(), c.marker) {
		c.boot = time.Since(c.start)
	}
	if c.live != nil {
		_, _ = c.live.Write(p)
	}
	if c.onLine != nil {
		for {
			rest := c.buf.Bytes()[c.scanned:]
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			c.scanned += i + 1
			c.onLine(strings.TrimRight(string(rest[:i]), "\r"))
		}
	}
	return n, nil
}

// hostCalls answers the guest's host_call requests: a console line
// "fidolab-vm: host-call TOKEN NAME" runs the handler, and "fidolab-vm: host-reply NAME STATUS"
// goes back on the serial line.
type hostCalls struct {
	ctx   context.Context
	token string
	calls map[string]func(ctx context.Context) error
	mu    sync.Mutex // one reply written at a time
	reply io.WriteCloser
	wg    sync.WaitGroup
}

func (h *hostCalls) line(l string) {
	rest, ok := strings.CutPrefix(l, "fidolab-vm: host-call "+h.token+" ")
	if !ok {
		return
	}
	name := strings.TrimSpace(rest)
	h.wg.Add(1)
	go func() { // not on the console's writer: the handler may take its time
		defer h.wg.Done()
		status := 127
		if fn, ok := h.calls[name]; ok {
			status = 0
			if err := fn(h.ctx); err != nil {
				status = 1
			}
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		_, _ = fmt.Fprintf(h.reply, "fidolab-vm: host-reply %s %d\n", name, status)
	}()
}

func (h *hostCalls) wait() { h.wg.Wait() }

func (c *consoleBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func (c *consoleBuffer) bootTime() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.boot
}

// takeSlot holds one of n lock files in dir for the duration of a run, so that all the processes
// of a `go test ./...` together run at most n guests.
func takeSlot(ctx context.Context, dir string, n int) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	files := make([]*os.File, n)
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range files {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.lock", i)), os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, err
		}
		files[i] = f
	}
	for {
		for i := range files {
			if files[i] == nil {
				continue
			}
			if syscall.Flock(int(files[i].Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
				held := files[i]
				files[i] = nil
				return func() { held.Close() }, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("vm: waiting for a free VM slot: %w", ctx.Err())
		case <-time.After(25 * time.Millisecond):
		}
	}
}
