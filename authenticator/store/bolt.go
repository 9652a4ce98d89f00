package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fidolab/fidolab/authenticator/userfile"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// OpenFile opens the state file at path. Only a path where nothing exists creates a new key, and
// the new file appears there complete (written under a temporary name, then linked into place), so
// an interrupted start never leaves an empty or half-made state behind.
//
// An existing file is checked before it is used, and refused rather than repaired or replaced:
//   - ErrPermissions when its mode grants group or others any access (it holds the master secret
//     and private keys, and whoever made it readable should find out, as ssh does for keys);
//   - ErrNotState when it is empty, not a regular file, not a bbolt database, or a bbolt database
//     without fidolab's records;
//   - ErrDamaged when its structure is broken (truncated, bad header pages, a damaged page): the
//     whole file is checked with ordinary reads before bbolt maps it (see checkFile), and a memory
//     fault while reading it later still becomes ErrDamaged instead of a crash;
//   - ErrLocked when another process holds it (after the lock timeout, DefaultLockTimeout);
//   - ErrSealed, ErrWrongKey or ErrNotSealed when its sealing does not match WithStateKey.
//
// Messages do not repeat path; callers name the file.
func OpenFile(path string, opts ...Option) (Store, error) {
	o := defaultOptions(opts)
	for range 3 {
		fi, err := os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			s, err := create(path, o)
			if errors.Is(err, fs.ErrExist) {
				continue // another process created it a moment ago: open that one
			}
			return s, err
		}
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: it is %s, not a regular file", ErrNotState, userfile.Kind(fi.Mode()))
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrPermissions, path, fi.Mode().Perm(), path)
		}
		return openExisting(path, o)
	}
	return nil, fmt.Errorf("store: %s keeps appearing and disappearing", path)
}

// openExisting checks the file's structure while holding its lock, so no live writer changes it
// under the check, then lets bbolt map it.
func openExisting(path string, o options) (Store, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := lockWithin(f, o.lockTimeout); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s (another fidolab serving this key?)", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: %w", err)
	}
	err = checkFile(f)
	f.Close() // releases the lock; bbolt takes its own
	if err != nil && !errors.Is(err, ErrNotState) && !errors.Is(err, ErrDamaged) {
		return nil, fmt.Errorf("store: reading %s: %w", path, err)
	}
	if err != nil {
		return nil, explain(err)
	}
	b, err := openBolt(path, o)
	if err != nil {
		return nil, explain(err)
	}
	s, err := open(b, o, false)
	if err != nil {
		_ = b.close()
		if errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, explain(err)
	}
	return s, nil
}

// explain adds what the user can do to a refused file.
func explain(err error) error {
	switch {
	case errors.Is(err, ErrNotState):
		return fmt.Errorf("%w; fidolab creates a new key only where no file exists (the file was left as it is)", err)
	case errors.Is(err, ErrDamaged):
		return fmt.Errorf("%w (the file was left as it is: restore it from a backup)", err)
	}
	return err
}

// lockWithin takes the exclusive advisory lock bbolt uses (flock), waiting at most timeout.
func lockWithin(f *os.File, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err
		}
		if time.Now().After(deadline) {
			return ErrLocked
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// create makes a new state under a temporary name beside path and links it into place; link(2)
// fails if path exists by then (fs.ErrExist: the caller opens that file instead).
func create(path string, o options) (Store, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".new-*")
	if err != nil {
		return nil, fmt.Errorf("store: creating %s: %w", path, err)
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name) // the new state lives on under path
	b, err := openBolt(name, o)
	if err != nil {
		return nil, err
	}
	s, err := open(b, o, true)
	if err != nil {
		_ = b.close()
		return nil, fmt.Errorf("store: creating %s: %w", path, err)
	}
	if err := os.Link(name, path); err != nil {
		_ = s.Close()
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("store: creating %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil { // the new name survives a crash too
		_ = d.Sync()
		d.Close()
	}
	return s, nil
}

type boltBackend struct {
	db *bolt.DB
	// broken holds the first memory fault met while reading the mapping; after it nothing more
	// is read or written.
	broken atomic.Pointer[error]
}

func openBolt(path string, o options) (b *boltBackend, err error) {
	defer recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	// NoSync stays off: every commit is fsynced, which is what makes an acknowledged write
	// survive kill -9 and power loss.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout, NoSync: o.noSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (another fidolab serving this key?)", ErrLocked, path)
		}
		if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
			return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &boltBackend{db: db}, nil
}

// recoverCorrupt turns a panic inside bbolt into an error: the file is input from outside the
// process and must not take the key down. checkFile has already refused structural damage, so this
// is the second line: a memory fault (bbolt maps the file; debug.SetPanicOnFault makes a fault a
// panic on the goroutine that reads) becomes ErrDamaged, any other bbolt panic ErrCorrupt.
func recoverCorrupt(err *error) {
	r := recover()
	if r == nil {
		return
	}
	if re, ok := r.(runtime.Error); ok {
		if _, fault := re.(interface{ Addr() uintptr }); fault {
			*err = fmt.Errorf("%w: memory fault reading the file (%v)", ErrDamaged, re)
			return
		}
	}
	*err = fmt.Errorf("%w: %v", ErrCorrupt, r)
}

// guard runs one transaction with memory faults turned into errors, and remembers a fault: the
// mapping cannot be trusted after one.
func (b *boltBackend) guard(run func() error) (err error) {
	if p := b.broken.Load(); p != nil {
		return *p
	}
	defer func() {
		if errors.Is(err, ErrDamaged) {
			b.broken.CompareAndSwap(nil, &err)
		}
	}()
	defer recoverCorrupt(&err)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	return run()
}

func (b *boltBackend) view(fn func(txn) error) error {
	return b.guard(func() error {
		return mapBoltErr(b.db.View(func(tx *bolt.Tx) error { return fn(boltTxn{tx}) }))
	})
}

func (b *boltBackend) update(fn func(txn) error) error {
	return b.guard(func() error {
		return mapBoltErr(b.db.Update(func(tx *bolt.Tx) error { return fn(boltTxn{tx}) }))
	})
}

func (b *boltBackend) init() error {
	return b.guard(func() error {
		return b.db.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

// closeAfterFault bounds how long close waits for bbolt after a memory fault.
const closeAfterFault = time.Second

// close releases the database. After a memory fault bbolt's own locks may still be held by the
// transaction the fault cut short (it faults inside code that unlocks without defer), so close
// then waits a moment and gives up: the mapping and the file lock go with the process.
func (b *boltBackend) close() error {
	p := b.broken.Load()
	if p == nil {
		return mapBoltErr(b.db.Close())
	}
	done := make(chan struct{})
	go func() {
		_ = b.db.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeAfterFault):
	}
	return *p
}

func mapBoltErr(err error) error {
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

type boltTxn struct{ tx *bolt.Tx }

func (t boltTxn) bucket(name []byte) (*bolt.Bucket, error) {
	bk := t.tx.Bucket(name)
	if bk == nil {
		return nil, fmt.Errorf("%w %q", errNoBucket, name)
	}
	return bk, nil
}

func (t boltTxn) get(bucket, key []byte) []byte {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	return bk.Get(key)
}

func (t boltTxn) put(bucket, key, val []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Put(key, val)
}

func (t boltTxn) del(bucket, key []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete(key)
}

func (t boltTxn) scan(bucket, prefix []byte, fn func(k, v []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if v == nil { // nested bucket: never created by this package
			continue
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (t boltTxn) clear(bucket []byte) error {
	if err := t.tx.DeleteBucket(bucket); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		return err
	}
	_, err := t.tx.CreateBucket(bucket)
	return err
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}
