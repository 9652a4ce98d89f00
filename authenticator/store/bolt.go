package store

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// OpenFile opens the state file at path, creating it with mode 0600 if it does not exist.
//
// An existing file whose mode grants group or others any access is refused with ErrPermissions
// rather than silently fixed: it holds the master secret and private keys, and whoever made it
// readable should find out (as ssh does for private keys). A file locked by another process is
// refused with ErrLocked after the lock timeout (DefaultLockTimeout) instead of hanging.
func OpenFile(path string, opts ...Option) (Store, error) {
	o := defaultOptions(opts)
	if fi, err := os.Stat(path); err == nil {
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("%w: %s has mode %04o, want 0600 (chmod 600 %s)", ErrPermissions, path, fi.Mode().Perm(), path)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store: %w", err)
	}
	b, err := openBolt(path, o)
	if err != nil {
		return nil, err
	}
	s, err := open(b, o)
	if err != nil {
		_ = b.close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return s, nil
}

type boltBackend struct {
	db *bolt.DB
}

func openBolt(path string, o options) (b *boltBackend, err error) {
	defer recoverCorrupt(&err)
	// NoSync stays off: every commit is fsynced, which is what makes an acknowledged write
	// survive kill -9 and power loss.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s (another fidolab serving this key?)", ErrLocked, path)
		}
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	b = &boltBackend{db: db}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return b, nil
}

// recoverCorrupt turns a bbolt panic on a damaged page into ErrCorrupt: the file is input from
// outside the process and must not take the key down. This is best effort: bbolt checksums
// only its meta pages, so damage inside a data page's structure can also fault or loop, and
// tx.Check is no help on open (it can itself loop on such damage). Records (values) are
// validated on every read.
func recoverCorrupt(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", ErrCorrupt, r)
	}
}

func (b *boltBackend) view(fn func(txn) error) (err error) {
	defer recoverCorrupt(&err)
	return mapBoltErr(b.db.View(func(tx *bolt.Tx) error { return fn(boltTxn{tx}) }))
}

func (b *boltBackend) update(fn func(txn) error) (err error) {
	defer recoverCorrupt(&err)
	return mapBoltErr(b.db.Update(func(tx *bolt.Tx) error { return fn(boltTxn{tx}) }))
}

func (b *boltBackend) close() error { return mapBoltErr(b.db.Close()) }

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
