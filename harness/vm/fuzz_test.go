package vm

import (
	"strings"
	"testing"
)

// FuzzParseModinfo: a damaged module file in a kernel package is an error, never a panic, and a
// parsed module always has a canonical name.
func FuzzParseModinfo(f *testing.F) {
	f.Add(elfWithSection(".modinfo", []byte("depends=hid,usbcore\x00name=usbhid\x00")))
	f.Add(elfWithSection(".modinfo", []byte("name=x")))
	f.Add(elfWithSection(".text", nil))
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		mi, err := parseModinfo(b)
		if err != nil {
			return
		}
		if mi.Name == "" || strings.Contains(mi.Name, "-") {
			t.Fatalf("module name %q", mi.Name)
		}
	})
}

// FuzzParseKernelMeta: apt's record of the metapackage, whatever it says, gives a package and a
// version that name a cache directory safely, or an error.
func FuzzParseKernelMeta(f *testing.F) {
	f.Add("Package: linux-image-amd64\nDepends: linux-image-6.1.0-56-amd64 (= 6.1.192-2)\n")
	f.Add("Depends: linux-image-6.1.0-56-amd64\n")
	f.Fuzz(func(t *testing.T, record string) {
		k, err := parseKernelMeta(record)
		if err != nil {
			return
		}
		if !strings.HasPrefix(k.Name, "linux-image-") || k.Version == "" {
			t.Fatalf("parsed %+v", k)
		}
		if id := k.id(); strings.ContainsAny(id, "/\x00") || id == ".." || id == "." {
			t.Fatalf("cache directory name %q", id)
		}
	})
}
