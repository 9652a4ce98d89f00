package catalog

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/userfile"
)

//go:embed data/*.yaml data/personas/*.yaml
var dataFS embed.FS

// Embedded returns the built-in catalog (scenarios/catalog/data/*.yaml).
func Embedded() (*Catalog, error) {
	return loadFS(dataFS, "data", "catalog/data")
}

// LoadDir reads every *.yaml and *.yml file directly in dir (not in sub-directories, which hold
// persona files) as a catalog. Persona files are named relative to the scenario file. Every file
// must be a regular file of at most 1 MiB (a persona file 64 KiB): a named pipe or a device in the
// directory is an error naming it, found without reading from it.
func LoadDir(dir string) (*Catalog, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("catalog: %s is not a directory", dir)
	}
	return loadFS(userfile.DirFS(dir), ".", dir)
}

// LoadFile reads one catalog file.
func LoadFile(file string) (*Catalog, error) {
	return loadFS(userfile.DirFS(filepath.Dir(file)), ".", filepath.Dir(file), filepath.Base(file))
}

// loadFS reads the catalog files under dir of fsys; display is how errors spell dir. With only,
// just those file names are read.
func loadFS(fsys fs.FS, dir, display string, only ...string) (*Catalog, error) {
	names := only
	if len(names) == 0 {
		ents, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", display, err)
		}
		for _, e := range ents {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		if len(names) == 0 {
			return nil, fmt.Errorf("catalog %s: no .yaml files", display)
		}
	}
	var (
		cats []*Catalog
		errs []error
	)
	for _, n := range names {
		shown := filepath.Join(display, n)
		data, err := userfile.ReadFS(fsys, path.Join(dir, n), shown, maxFileSize)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sc, err := Parse(data, shown, personaResolver(fsys, dir, display))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cats = append(cats, &Catalog{Scenarios: sc})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return Merge(cats...)
}

// personaResolver reads persona files relative to the scenario file's directory inside fsys, so an
// embedded catalog can ship its own personas; a bare name is a built-in persona.
func personaResolver(fsys fs.FS, dir, display string) PersonaResolver {
	return func(ref string) (*persona.Persona, error) {
		if !strings.ContainsAny(ref, `/\`) && !strings.HasSuffix(ref, ".yaml") && !strings.HasSuffix(ref, ".yml") {
			return persona.Builtin(ref)
		}
		rel := path.Clean(filepath.ToSlash(ref))
		if path.IsAbs(rel) || strings.HasPrefix(rel, "../") || rel == ".." {
			return nil, fmt.Errorf("persona file %q must be inside the catalog directory", ref)
		}
		data, err := userfile.ReadFS(fsys, path.Join(dir, rel), filepath.Join(display, rel), persona.MaxFileSize)
		if err != nil {
			return nil, fmt.Errorf("persona file: %w", err)
		}
		return persona.Parse(data, filepath.Join(display, rel))
	}
}
