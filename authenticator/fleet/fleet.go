// Package fleet opens many emulated keys in one process, for `fidolab serve --keys N`: a farm of
// virtual machines that each want a key of their own. Key n (1…N) has its own state file
// (DIR/usbN.state), its own persona (the one its state file was created with) and its own
// simulated user, and all of them share one signer, so N keys keep one nonce pool warm, not N.
//
// A fleet holds no goroutine of its own, and an idle key none either (its CTAPHID device starts
// a worker only while a request runs); whoever serves the keys adds one listener per key.
package fleet

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"

	"github.com/fidolab/fidolab/authenticator/emulator"
	"github.com/fidolab/fidolab/authenticator/persona"
	"github.com/fidolab/fidolab/authenticator/signer"
	"github.com/fidolab/fidolab/authenticator/store"
	"github.com/fidolab/fidolab/authenticator/user"
)

// MaxKeys bounds a fleet: each key costs file descriptors (its state file, its listener, one
// per connected host) and about a hundred KiB.
const MaxKeys = 10000

// Options say what Open builds.
type Options struct {
	// N is how many keys, 1…MaxKeys.
	N int
	// StateDir holds key n's state in StatePath(StateDir, n), created (mode 0700) if missing;
	// "" keeps every key in memory.
	StateDir string
	// Persona is the kind of key for state files that do not have one yet; nil means the
	// built-in "default". A state file keeps the persona it was created with.
	Persona *persona.Persona
	// User returns key n's initial simulated user (a fresh one per key: a script is per key);
	// nil means always yes.
	User func(n int) (user.Policy, error)
	// Signer is shared by every key; nil makes one, closed with the fleet.
	Signer *signer.Signer
	// Logger gets each key's debug lines, with a key=usbN attribute; nil discards.
	Logger *slog.Logger
	// StoreOptions apply to every state file (e.g. store.WithStateKey).
	StoreOptions []store.Option
}

// Fleet is N open keys.
type Fleet struct {
	keys   []*emulator.Key
	sig    *signer.Signer
	ownSig bool
}

// Name is how key n is called in paths and the control API: usbN.
func Name(n int) string { return "usb" + strconv.Itoa(n) }

// StatePath is key n's state file in dir.
func StatePath(dir string, n int) string { return filepath.Join(dir, Name(n)+".state") }

// openers bounds how many keys open at once: creating a state file ends with an fsync, so a
// few at a time hide its latency without a thousand goroutines.
const openers = 8

// Open opens (or creates) the keys. On any error every key opened so far is closed again and
// the error names the key.
func Open(o Options) (*Fleet, error) {
	if o.N < 1 || o.N > MaxKeys {
		return nil, fmt.Errorf("fleet: %d keys; want 1…%d", o.N, MaxKeys)
	}
	if o.StateDir != "" {
		if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("fleet: state directory: %w", err)
		}
	}
	f := &Fleet{keys: make([]*emulator.Key, o.N), sig: o.Signer}
	if f.sig == nil {
		f.sig, f.ownSig = signer.New(), true
	}
	errs := make([]error, o.N)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(openers, o.N) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f.keys[i], errs[i] = openKey(o, i+1, f.sig)
			}
		}()
	}
	for i := range o.N {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

func openKey(o Options, n int, sig *signer.Signer) (*emulator.Key, error) {
	opts := emulator.Options{Persona: o.Persona, Signer: sig, StoreOptions: o.StoreOptions}
	if o.StateDir != "" {
		opts.StatePath = StatePath(o.StateDir, n)
	}
	if o.User != nil {
		p, err := o.User(n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", Name(n), err)
		}
		opts.User = p
	}
	if o.Logger != nil {
		opts.Logger = o.Logger.With("key", Name(n))
	}
	k, err := emulator.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", Name(n), err)
	}
	return k, nil
}

// Len is how many keys the fleet has.
func (f *Fleet) Len() int { return len(f.keys) }

// Key returns key n (1…Len).
func (f *Fleet) Key(n int) (*emulator.Key, bool) {
	if n < 1 || n > len(f.keys) {
		return nil, false
	}
	return f.keys[n-1], true
}

// Keys returns every key, key n at index n-1.
func (f *Fleet) Keys() []*emulator.Key { return f.keys }

// Signer is the signer the keys share.
func (f *Fleet) Signer() *signer.Signer { return f.sig }

// Close closes every key (releasing its state file) and the fleet's own signer.
func (f *Fleet) Close() error {
	var errs []error
	for _, k := range f.keys {
		if k != nil {
			errs = append(errs, k.Close())
		}
	}
	if f.ownSig {
		f.sig.Close()
	}
	return errors.Join(errs...)
}

var stateName = regexp.MustCompile(`^usb([0-9]+)\.state$`)

// StateFiles lists the keys' state files in dir (usbN.state), in key order.
func StateFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type file struct {
		n    int
		path string
	}
	var files []file
	for _, e := range entries {
		m := stateName.FindStringSubmatch(e.Name())
		if m == nil || e.Type()&fs.ModeType != 0 {
			continue
		}
		n, err := strconv.Atoi(m[1])
		if err != nil {
			continue
		}
		files = append(files, file{n, filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(files, func(a, b file) int { return a.n - b.n })
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.path
	}
	return out, nil
}
