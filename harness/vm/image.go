package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed guest/init
var guestInit []byte

//go:embed guest/lib.sh
var guestLib []byte

// imageFormat changes whenever the layout of the cache or of the base initramfs changes in a way
// the content hash does not see.
const imageFormat = "2"

// ErrUnavailable wraps every reason this machine cannot run a guest at all (QEMU, busybox-static,
// apt or the kernel package missing), as opposed to a guest that ran and failed.
var ErrUnavailable = errors.New("vm: cannot run a test guest on this machine")

// hostTools are the host programs the guest carries (with their shared libraries). Each names the
// Debian package that provides it, for error messages.
var hostTools = []struct{ path, pkg string }{
	{"/usr/bin/fido2-token", "fido2-tools"},
	{"/usr/bin/fido2-cred", "fido2-tools"},
	{"/usr/bin/fido2-assert", "fido2-tools"},
	{"/usr/sbin/usbip", "usbip"},
	{"/usr/sbin/usbipd", "usbip"},
}

// busyboxPath is Debian busybox-static's binary.
const busyboxPath = "/bin/busybox"

// Image is a bootable guest: an uncompressed kernel and a base initramfs, both in the cache.
type Image struct {
	Kernel    string        // ELF vmlinux
	Initramfs string        // base cpio archive (newc); a run appends its own archive
	Release   string        // guest kernel release, e.g. "6.1.0-56-amd64"
	Package   string        // Debian package and version the kernel came from
	Built     bool          // true when Prepare built something rather than finding it cached
	BuildTime time.Duration // how long Prepare took
}

// Options tune Prepare. The zero value is what tests use.
type Options struct {
	// CacheDir holds kernels and images; "" means $FIDOLAB_VM_CACHE, else os.UserCacheDir()/fidolab-vm.
	CacheDir string
	// KernelDeb uses this Debian linux-image .deb instead of downloading the current one with apt
	// ($FIDOLAB_VM_KERNEL_DEB when empty).
	KernelDeb string
	// Logger gets progress lines (kernel download, image build); nil discards.
	Logger *slog.Logger
}

func (o Options) cacheDir() (string, error) {
	if o.CacheDir != "" {
		return o.CacheDir, nil
	}
	if d := os.Getenv("FIDOLAB_VM_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("vm: no cache directory (set FIDOLAB_VM_CACHE): %w", err)
	}
	return filepath.Join(d, "fidolab-vm"), nil
}

var (
	prepMu    sync.Mutex
	prepCache = map[string]*Image{}
)

// Prepare returns the guest image, building what the cache lacks: the kernel is downloaded (apt-get
// download of the package linux-image-amd64 points at) and unpacked once per package version, the
// base initramfs is rebuilt when the kernel or any host tool it carries changes. Concurrent callers,
// in this process or others, wait for one build. Within a process the result is remembered.
func Prepare(ctx context.Context, o Options) (*Image, error) {
	dir, err := o.cacheDir()
	if err != nil {
		return nil, err
	}
	prepMu.Lock()
	defer prepMu.Unlock()
	if img, ok := prepCache[dir]; ok {
		cp := *img
		cp.Built, cp.BuildTime = false, 0
		return &cp, nil
	}
	img, err := prepare(ctx, o, dir)
	if err != nil {
		return nil, err
	}
	prepCache[dir] = img
	return img, nil
}

func (o Options) log() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// checkHost reports the first missing host program, as ErrUnavailable.
func checkHost() error {
	var missing []string
	need := []struct{ path, pkg string }{{busyboxPath, "busybox-static"}}
	need = append(need, hostTools...)
	for _, t := range need {
		if _, err := os.Stat(t.path); err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", t.path, t.pkg))
		}
	}
	for _, t := range []struct{ cmd, pkg string }{
		{qemuBinary, "qemu-system-x86"}, {"dpkg-deb", "dpkg"}, {"xz", "xz-utils"},
	} {
		if _, err := exec.LookPath(t.cmd); err != nil {
			missing = append(missing, fmt.Sprintf("%s (package %s)", t.cmd, t.pkg))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s; run bash .ci/deps (as root)", ErrUnavailable, strings.Join(missing, ", "))
	}
	if err := isStatic(busyboxPath); err != nil {
		return fmt.Errorf("%w: %v; install busybox-static", ErrUnavailable, err)
	}
	return nil
}

func isStatic(p string) error {
	libs, err := sharedLibs(p)
	if err != nil {
		return err
	}
	if len(libs) > 0 {
		return fmt.Errorf("%s is dynamically linked", p)
	}
	return nil
}

func prepare(ctx context.Context, o Options, dir string) (*Image, error) {
	start := time.Now()
	if err := checkHost(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("vm: cache %s: %w", dir, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "build.lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()

	log := o.log()
	kf, pkg, built, err := kernel(ctx, o, dir, log)
	if err != nil {
		return nil, err
	}
	img := &Image{Kernel: kf.Vmlinux, Release: kf.Release, Package: pkg, Built: built}
	initrd, builtInitrd, err := baseInitramfs(dir, kf, log)
	if err != nil {
		return nil, err
	}
	img.Initramfs = initrd
	img.Built = img.Built || builtInitrd
	img.BuildTime = time.Since(start)
	return img, nil
}

// kernelManifest is kernel.json in a kernel's cache directory: written last, so its presence means
// the directory is complete.
type kernelManifest struct {
	Package string
	Release string
	Modules map[string]string // relative path in /lib/modules/RELEASE → file name in the cache dir
	Deps    map[string][]string
	Builtin []string
}

// kernel returns the unpacked kernel, downloading and unpacking it if the cache lacks it. Offline,
// the newest kernel already in the cache is used.
func kernel(ctx context.Context, o Options, dir string, log *slog.Logger) (*kernelFiles, string, bool, error) {
	deb := o.KernelDeb
	if deb == "" {
		deb = os.Getenv("FIDOLAB_VM_KERNEL_DEB")
	}
	var (
		pkg kernelPkg
		err error
	)
	if deb != "" {
		sum, herr := fileHash(deb)
		if herr != nil {
			return nil, "", false, fmt.Errorf("%w: kernel package %s: %v", ErrUnavailable, deb, herr)
		}
		pkg = kernelPkg{Name: strings.TrimSuffix(filepath.Base(deb), ".deb"), Version: sum[:12]}
	} else if cur, ok := recentKernel(dir); ok {
		pkg = cur
	} else if pkg, err = findKernelPackage(ctx); err != nil {
		if kf, name, ok := newestCachedKernel(dir); ok {
			log.Warn("vm: cannot ask apt for the kernel; using the cached one", "kernel", name, "err", err)
			return kf, name, false, nil
		}
		return nil, "", false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	kdir := filepath.Join(dir, "kernel", pkg.id())
	if kf, err := loadKernel(kdir); err == nil {
		if deb == "" {
			noteKernel(dir, pkg)
		}
		return kf, pkg.Name + " " + pkg.Version, false, nil
	}
	log.Info("vm: fetching guest kernel", "package", pkg.Name, "version", pkg.Version)
	tmp, err := os.MkdirTemp(filepath.Join(dir), "kernel-tmp-")
	if err != nil {
		return nil, "", false, err
	}
	defer os.RemoveAll(tmp)
	if deb == "" {
		if deb, err = downloadKernel(ctx, pkg, tmp); err != nil {
			if kf, name, ok := newestCachedKernel(dir); ok {
				log.Warn("vm: cannot download the kernel; using the cached one", "kernel", name, "err", err)
				return kf, name, false, nil
			}
			return nil, "", false, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	out := filepath.Join(tmp, "out")
	kf, err := extractKernel(ctx, deb, out, Modules)
	if err != nil {
		return nil, "", false, fmt.Errorf("vm: unpacking %s: %w", deb, err)
	}
	m := kernelManifest{Package: pkg.Name + " " + pkg.Version, Release: kf.Release, Modules: map[string]string{},
		Deps: kf.Deps, Builtin: kf.Builtin}
	for rel, p := range kf.Modules {
		m.Modules[rel], _ = filepath.Rel(out, p)
	}
	if err := writeJSON(filepath.Join(out, "kernel.json"), m); err != nil {
		return nil, "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(kdir), 0o755); err != nil {
		return nil, "", false, err
	}
	_ = os.RemoveAll(kdir) // an incomplete earlier attempt (no kernel.json)
	if err := os.Rename(out, kdir); err != nil {
		return nil, "", false, err
	}
	kf, err = loadKernel(kdir)
	if err == nil && o.KernelDeb == "" && os.Getenv("FIDOLAB_VM_KERNEL_DEB") == "" {
		noteKernel(dir, pkg)
	}
	return kf, m.Package, true, err
}

// kernelCheckInterval is how long the answer of apt about the current kernel package is trusted:
// asking takes about a second, which every test process would otherwise pay.
const kernelCheckInterval = 12 * time.Hour

type currentKernel struct {
	Package kernelPkg
	Checked time.Time
}

// recentKernel returns the kernel package apt named less than kernelCheckInterval ago, if it is
// unpacked in the cache. FIDOLAB_VM_REFRESH=1 asks apt again.
func recentKernel(dir string) (kernelPkg, bool) {
	if os.Getenv("FIDOLAB_VM_REFRESH") == "1" {
		return kernelPkg{}, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "kernel", "current.json"))
	if err != nil {
		return kernelPkg{}, false
	}
	var c currentKernel
	if json.Unmarshal(b, &c) != nil || c.Package.Name == "" || time.Since(c.Checked) > kernelCheckInterval || time.Since(c.Checked) < 0 {
		return kernelPkg{}, false
	}
	if _, err := os.Stat(filepath.Join(dir, "kernel", c.Package.id(), "kernel.json")); err != nil {
		return kernelPkg{}, false
	}
	return c.Package, true
}

func noteKernel(dir string, pkg kernelPkg) {
	b, _ := json.Marshal(currentKernel{Package: pkg, Checked: time.Now()})
	_ = writeAtomic(filepath.Join(dir, "kernel", "current.json"), b)
}

func loadKernel(kdir string) (*kernelFiles, error) {
	b, err := os.ReadFile(filepath.Join(kdir, "kernel.json"))
	if err != nil {
		return nil, err
	}
	var m kernelManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", kdir, err)
	}
	kf := &kernelFiles{Release: m.Release, Vmlinux: filepath.Join(kdir, "vmlinux"), Config: filepath.Join(kdir, "config"),
		Modules: map[string]string{}, Deps: m.Deps, Builtin: m.Builtin}
	for rel, p := range m.Modules {
		kf.Modules[rel] = filepath.Join(kdir, p)
	}
	if _, err := os.Stat(kf.Vmlinux); err != nil {
		return nil, err
	}
	return kf, nil
}

func newestCachedKernel(dir string) (*kernelFiles, string, bool) {
	ents, _ := os.ReadDir(filepath.Join(dir, "kernel"))
	var best *kernelFiles
	var bestName string
	var bestTime time.Time
	for _, e := range ents {
		kdir := filepath.Join(dir, "kernel", e.Name())
		kf, err := loadKernel(kdir)
		if err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join(kdir, "kernel.json"))
		if err == nil && fi.ModTime().After(bestTime) {
			best, bestName, bestTime = kf, e.Name(), fi.ModTime()
		}
	}
	return best, bestName, best != nil
}

// guestFile is one file of the base initramfs taken from the host.
type guestFile struct {
	guest, host string
	perm        fs.FileMode
}

// baseFiles lists what the base initramfs copies from the host: busybox, the host tools and their
// libraries, usb.ids for usbip, and the kernel modules.
func baseFiles(kf *kernelFiles) ([]guestFile, error) {
	files := []guestFile{{"/bin/busybox", busyboxPath, 0o755}}
	var bins []string
	for _, t := range hostTools {
		files = append(files, guestFile{t.path, t.path, 0o755})
		bins = append(bins, t.path)
	}
	libs, err := sharedLibs(bins...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, l := range libs {
		files = append(files, guestFile{l, l, 0o755})
	}
	for _, ids := range []string{"/usr/share/hwdata/usb.ids", "/usr/share/misc/usb.ids", "/var/lib/usbutils/usb.ids"} {
		if _, err := os.Stat(ids); err == nil {
			files = append(files, guestFile{"/usr/share/hwdata/usb.ids", ids, 0o644})
			break
		}
	}
	rels := make([]string, 0, len(kf.Modules))
	for rel := range kf.Modules {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		files = append(files, guestFile{"/lib/modules/" + kf.Release + "/" + rel, kf.Modules[rel], 0o644})
	}
	return files, nil
}

// baseInitramfs returns the cached base initramfs for kf, building it when the recipe or any host
// file in it changed (the key hashes paths, sizes and modification times, and the embedded scripts).
func baseInitramfs(dir string, kf *kernelFiles, log *slog.Logger) (string, bool, error) {
	files, err := baseFiles(kf)
	if err != nil {
		return "", false, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "format %s\nkernel %s\n", imageFormat, kf.Vmlinux)
	h.Write(guestInit)
	h.Write(guestLib)
	for _, f := range files {
		fi, err := os.Stat(f.host)
		if err != nil {
			return "", false, err
		}
		fmt.Fprintf(h, "%s %s %d %d\n", f.guest, f.host, fi.Size(), fi.ModTime().UnixNano())
	}
	key := hex.EncodeToString(h.Sum(nil))[:16]
	out := filepath.Join(dir, "initramfs-"+kf.Release+"-"+key+".cpio")
	if _, err := os.Stat(out); err == nil {
		now := time.Now()
		_ = os.Chtimes(out, now, now) // in use: keep it from collectImages
		return out, false, nil
	}
	log.Info("vm: building base initramfs", "path", out)
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	for _, d := range []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/root", "/etc", "/var", "/mnt",
		"/sys/kernel/config", "/usr/bin", "/usr/sbin"} {
		_ = w.Mkdir(d)
	}
	_ = w.Symlink("/var/run", "/run")
	if err := busyboxLinks(w); err != nil {
		return "", false, err
	}
	for _, f := range files {
		body, err := os.ReadFile(f.host)
		if err != nil {
			return "", false, err
		}
		if err := w.File(f.guest, f.perm, body); err != nil {
			return "", false, err
		}
	}
	mods := "/lib/modules/" + kf.Release + "/"
	_ = w.File(mods+"modules.dep", 0o644, []byte(modulesDep(kf)))
	_ = w.File(mods+"modules.builtin", 0o644, []byte(strings.Join(kf.Builtin, "\n")+"\n"))
	_ = w.File("/etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	_ = w.File("/etc/group", 0o644, []byte("root:x:0:\n"))
	_ = w.File("/init", 0o755, guestInit)
	if err := w.File("/lib/fidolab-vm.sh", 0o644, guestLib); err != nil {
		return "", false, err
	}
	if err := w.Close(); err != nil {
		return "", false, err
	}
	if err := writeAtomic(out, buf.Bytes()); err != nil {
		return "", false, err
	}
	collectImages(dir, out)
	return out, true, nil
}

// imageMaxIdle is how long an image nobody prepared stays in the cache. Several checkouts of
// the project (other branches, other worktrees) share the cache with images of their own, so an
// image is never removed because another one was built.
const imageMaxIdle = 72 * time.Hour

// collectImages removes base images, other than keep, that no Prepare used for imageMaxIdle.
func collectImages(dir, keep string) {
	olds, _ := filepath.Glob(filepath.Join(dir, "initramfs-*.cpio"))
	for _, o := range olds {
		if fi, err := os.Stat(o); err == nil && o != keep && time.Since(fi.ModTime()) > imageMaxIdle {
			_ = os.Remove(o)
		}
	}
}

// busyboxLinks writes a symlink to /bin/busybox for every applet, where busybox itself would
// install it (busybox --list-full), leaving out names the image provides otherwise.
func busyboxLinks(w *cpioWriter) error {
	out, err := exec.Command(busyboxPath, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%w: %s --list-full: %v", ErrUnavailable, busyboxPath, err)
	}
	skip := map[string]bool{"bin/busybox": true, "init": true, "linuxrc": true, "sbin/init": true}
	for _, t := range hostTools {
		skip[strings.TrimPrefix(t.path, "/")] = true
	}
	for app := range strings.FieldsSeq(string(out)) {
		if skip[app] {
			continue
		}
		if err := w.Symlink("/"+app, "/bin/busybox"); err != nil {
			return err
		}
	}
	return nil
}

func fileHash(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// writeAtomic writes p through a temporary file and a rename, so readers never see half a file.
func writeAtomic(p string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+filepath.Base(p)+"-")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), p)
}

// lockFile takes an exclusive flock on p, waiting while another process holds it (or ctx ends).
func lockFile(ctx context.Context, p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("vm: locking %s: %w", p, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
