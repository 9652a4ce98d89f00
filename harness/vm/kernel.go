package vm

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Modules are the guest kernel modules the image carries (with everything they depend on): the HID
// core and UHID, USB host controllers for QEMU's xhci and usb-redir, USB/IP on both ends, and the
// gadget side on dummy_hcd.
var Modules = []string{
	"uhid", "hid-generic", "usbhid",
	"xhci-pci",
	"vhci-hcd", "usbip-host",
	"dummy_hcd", "libcomposite", "usb_f_hid", "usb_f_fs", "configfs",
}

// kernelPackageMeta is the Debian metapackage that depends on the current kernel image.
const kernelPackageMeta = "linux-image-amd64"

// kernelPkg names one Debian kernel image package.
type kernelPkg struct {
	Name    string // linux-image-6.1.0-56-amd64
	Version string // 6.1.192-2
}

// id is the cache directory name of the package: every character a path can carry safely.
func (k kernelPkg) id() string {
	return regexp.MustCompile(`[^A-Za-z0-9.+_-]`).ReplaceAllString(k.Name+"_"+k.Version, "_")
}

// kernelRelease is "6.1.0-56-amd64" for "linux-image-6.1.0-56-amd64".
func (k kernelPkg) kernelRelease() string { return strings.TrimPrefix(k.Name, "linux-image-") }

// findKernelPackage asks apt which kernel image the metapackage currently depends on, and its
// version: the metapackage's Depends line names both ("linux-image-6.1.0-56-amd64 (= 6.1.192-2)").
func findKernelPackage(ctx context.Context) (kernelPkg, error) {
	out, err := exec.CommandContext(ctx, "apt-cache", "show", "--no-all-versions", kernelPackageMeta).Output()
	if err != nil {
		return kernelPkg{}, fmt.Errorf("apt-cache show %s: %w (is this Debian with apt lists? run apt-get update)", kernelPackageMeta, err)
	}
	return parseKernelMeta(string(out))
}

var kernelDependsRE = regexp.MustCompile(`(?m)^Depends:.*?\b(linux-image-[0-9][^ ,()]*) \(= ([^)\s]+)\)`)

// parseKernelMeta reads the kernel image package and version out of the metapackage's record.
func parseKernelMeta(record string) (kernelPkg, error) {
	m := kernelDependsRE.FindStringSubmatch(record)
	if m == nil {
		return kernelPkg{}, fmt.Errorf("%s depends on no versioned linux-image package", kernelPackageMeta)
	}
	return kernelPkg{Name: m[1], Version: m[2]}, nil
}

// downloadKernel fetches the package's .deb into dir with apt-get download and returns its path.
func downloadKernel(ctx context.Context, k kernelPkg, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "apt-get", "download", "-q", k.Name+"="+k.Version)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s=%s: %w\n%s", k.Name, k.Version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, k.Name+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d .deb files in %s", k.Name, len(debs), dir)
	}
	return debs[0], nil
}

// kernelFiles is what the image needs from a kernel package.
type kernelFiles struct {
	Release string            // "6.1.0-56-amd64"
	Vmlinux string            // path of the uncompressed ELF kernel (booted through its PVH note)
	Config  string            // path of the kernel's config file
	Modules map[string]string // module file relative to /lib/modules/RELEASE → path on the host
	Builtin []string          // modules.builtin lines
	Deps    map[string][]string
}

// moduleInfo is what a module's .modinfo section says about it.
type moduleInfo struct {
	Name    string   // "hid_generic"
	Depends []string // module names, "_" form
}

// parseModinfo reads the name and dependencies from a kernel module (an ELF relocatable file).
func parseModinfo(ko []byte) (moduleInfo, error) {
	f, err := elf.NewFile(bytes.NewReader(ko))
	if err != nil {
		return moduleInfo{}, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return moduleInfo{}, errors.New("no .modinfo section")
	}
	data, err := sec.Data()
	if err != nil {
		return moduleInfo{}, err
	}
	var mi moduleInfo
	for kv := range bytes.SplitSeq(data, []byte{0}) {
		k, v, ok := strings.Cut(string(kv), "=")
		if !ok {
			continue
		}
		switch k {
		case "name":
			mi.Name = modName(v)
		case "depends":
			for d := range strings.SplitSeq(v, ",") {
				if d = strings.TrimSpace(d); d != "" {
					mi.Depends = append(mi.Depends, modName(d))
				}
			}
		}
	}
	if mi.Name == "" {
		return mi, errors.New(".modinfo has no name")
	}
	return mi, nil
}

// modName is the kernel's canonical module name: "-" and "_" are the same character.
func modName(s string) string {
	s = strings.TrimSuffix(path.Base(s), ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// extractKernel streams a kernel .deb (through dpkg-deb --fsys-tarfile) and writes into dir the
// uncompressed vmlinux, the config and the modules in want with their dependencies. It needs no
// kmod: dependencies come from each module's .modinfo. Every module is staged on disk once (the
// package does not list dependencies before its files), and the unused ones are removed.
func extractKernel(ctx context.Context, deb, dir string, want []string) (*kernelFiles, error) {
	stage := filepath.Join(dir, "stage")
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb: %w", err)
	}
	kf := &kernelFiles{Modules: map[string]string{}, Deps: map[string][]string{}}
	byName := map[string]string{} // module name → path relative to the modules dir
	var vmlinuz string
	tr := tar.NewReader(bufio.NewReaderSize(out, 1<<20))
	var terr error
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			terr = fmt.Errorf("reading %s: %w", deb, err)
			break
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		name := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		name = strings.TrimPrefix(name, "usr/")
		switch {
		case strings.HasPrefix(name, "boot/vmlinuz-"):
			kf.Release = strings.TrimPrefix(name, "boot/vmlinuz-")
			vmlinuz = filepath.Join(stage, "vmlinuz")
			terr = writeFrom(vmlinuz, tr)
		case strings.HasPrefix(name, "boot/config-"):
			kf.Config = filepath.Join(dir, "config")
			terr = writeFrom(kf.Config, tr)
		case strings.HasPrefix(name, "lib/modules/") && strings.HasSuffix(name, "/modules.builtin"):
			var b bytes.Buffer
			if _, terr = io.Copy(&b, tr); terr == nil {
				kf.Builtin = strings.Fields(b.String())
			}
		case strings.HasPrefix(name, "lib/modules/") && strings.HasSuffix(name, ".ko"):
			parts := strings.SplitN(name, "/", 4) // lib modules RELEASE rel
			if len(parts) != 4 {
				continue
			}
			rel := parts[3]
			body, err := io.ReadAll(tr)
			if err != nil {
				terr = err
				break
			}
			mi, err := parseModinfo(body)
			if err != nil {
				terr = fmt.Errorf("module %s: %w", rel, err)
				break
			}
			byName[mi.Name] = rel
			kf.Deps[mi.Name] = mi.Depends
			p := filepath.Join(stage, "modules", filepath.FromSlash(rel))
			if terr = os.MkdirAll(filepath.Dir(p), 0o755); terr == nil {
				terr = os.WriteFile(p, body, 0o644)
			}
		}
		if terr != nil {
			break
		}
	}
	if terr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, terr
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s", deb, err, stderr.String())
	}
	if vmlinuz == "" {
		return nil, fmt.Errorf("%s has no boot/vmlinuz-*", deb)
	}
	kf.Vmlinux = filepath.Join(dir, "vmlinux")
	if err := decompressVmlinuz(ctx, vmlinuz, kf.Vmlinux); err != nil {
		return nil, err
	}

	need, err := moduleClosure(want, kf.Deps, kf.Builtin)
	if err != nil {
		return nil, err
	}
	for _, m := range need {
		rel := byName[m]
		dst := filepath.Join(dir, "modules", filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.Rename(filepath.Join(stage, "modules", filepath.FromSlash(rel)), dst); err != nil {
			return nil, err
		}
		kf.Modules[rel] = dst
	}
	// Only the dependencies of the modules kept are worth keeping.
	for name := range kf.Deps {
		if !slices.Contains(need, name) {
			delete(kf.Deps, name)
		}
	}
	return kf, nil
}

func writeFrom(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// moduleClosure returns want and every module they depend on (canonical names, sorted), leaving out
// modules built into the kernel. A wanted module that is neither a file nor built in is an error.
func moduleClosure(want []string, deps map[string][]string, builtin []string) ([]string, error) {
	isBuiltin := map[string]bool{}
	for _, b := range builtin {
		isBuiltin[modName(b)] = true
	}
	seen := map[string]bool{}
	var visit func(string) error
	visit = func(m string) error {
		m = modName(m)
		if seen[m] || isBuiltin[m] {
			return nil
		}
		d, ok := deps[m]
		if !ok {
			return fmt.Errorf("kernel module %s: not in the kernel package", m)
		}
		seen[m] = true
		for _, x := range d {
			if err := visit(x); err != nil {
				return fmt.Errorf("%w (needed by %s)", err, m)
			}
		}
		return nil
	}
	for _, w := range want {
		if err := visit(w); err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

// xzMagic starts an xz stream; the x86 bzImage of Debian's kernel carries its payload as one.
var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// decompressVmlinuz writes the ELF kernel inside a bzImage to dst. QEMU boots an ELF vmlinux
// directly through its PVH entry note, which skips the firmware's linuxboot and the in-guest
// decompression — about 2.5 s of a TCG boot.
func decompressVmlinuz(ctx context.Context, src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	i := bytes.Index(data, xzMagic)
	if i < 0 {
		return fmt.Errorf("%s: no xz payload (kernel not built with CONFIG_KERNEL_XZ?)", src)
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, "xz", "--decompress", "--stdout", "--single-stream")
	cmd.Stdin = bytes.NewReader(data[i:])
	cmd.Stdout = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("xz -d of %s's payload: %w: %s", src, err, stderr.String())
	}
	if err := f.Close(); err != nil {
		return err
	}
	ef, err := elf.Open(dst)
	if err != nil {
		return fmt.Errorf("%s: decompressed kernel is not ELF: %w", src, err)
	}
	return ef.Close()
}

// modulesDep renders modules.dep for busybox modprobe: one line per module, "rel: dep dep …", the
// dependencies listed in the order depmod uses (a module's dependencies after it, so loading them
// right to left works).
func modulesDep(kf *kernelFiles) string {
	rel := map[string]string{}
	for r := range kf.Modules {
		rel[modName(r)] = r
	}
	names := make([]string, 0, len(rel))
	for n := range rel {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		var order []string // post-order: dependencies first
		seen := map[string]bool{n: true}
		var visit func(string)
		visit = func(m string) {
			for _, d := range kf.Deps[m] {
				if seen[d] || rel[d] == "" {
					continue
				}
				seen[d] = true
				visit(d)
				order = append(order, rel[d])
			}
		}
		visit(n)
		slices.Reverse(order)
		b.WriteString(rel[n] + ":")
		for _, o := range order {
			b.WriteString(" " + o)
		}
		b.WriteString("\n")
	}
	return b.String()
}
