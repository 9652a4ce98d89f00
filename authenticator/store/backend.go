package store

import (
	"bytes"
	"errors"
	"sort"
	"sync"
)

// Buckets of the state. Every backend creates all of them on open.
var (
	bucketMeta   = []byte("meta")     // schema version, master secret, counters, PIN, settings, large blobs
	bucketCred   = []byte("cred")     // credential ID → credential record
	bucketUser   = []byte("creduser") // userKey(RPID, UserID) → credential ID
	bucketFinger = []byte("finger")   // template ID → fingerprint record
	bucketBlob   = []byte("blob")     // name → persona blob, kept across Reset
	allBuckets   = [][]byte{bucketMeta, bucketCred, bucketUser, bucketFinger, bucketBlob}
)

var (
	errReadOnlyTxn = errors.New("store: write in a read-only transaction")
	errNoBucket    = errors.New("store: missing bucket")
)

// backend is the small transactional key/value interface both implementations provide. The
// record logic in db.go is written once against it, which is what makes the memory twin behave
// exactly like the file.
type backend interface {
	view(fn func(txn) error) error
	// update runs fn in a write transaction; when it returns nil the writes are durable.
	update(fn func(txn) error) error
	// init creates the buckets that do not exist yet.
	init() error
	close() error
}

// txn is one transaction. Slices returned by get and passed to scan are valid only until fn
// returns, as with bbolt.
type txn interface {
	get(bucket, key []byte) []byte
	put(bucket, key, val []byte) error
	del(bucket, key []byte) error
	// scan calls fn for every key starting with prefix, in ascending key order.
	scan(bucket, prefix []byte, fn func(k, v []byte) error) error
	clear(bucket []byte) error
}

// memBackend keeps the buckets in maps. A write transaction stages its changes in an overlay
// and applies them only when fn succeeds, so a failed call changes nothing (like a bbolt
// rollback).
type memBackend struct {
	mu   sync.RWMutex
	data map[string]map[string][]byte
}

func newMemBackend() *memBackend {
	m := &memBackend{data: make(map[string]map[string][]byte)}
	for _, b := range allBuckets {
		m.data[string(b)] = make(map[string][]byte)
	}
	return m
}

func (m *memBackend) view(fn func(txn) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(&memTxn{base: m.data})
}

func (m *memBackend) update(fn func(txn) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &memTxn{base: m.data, writable: true, over: make(map[string]map[string]*[]byte)}
	if err := fn(t); err != nil {
		return err
	}
	for b, kv := range t.over {
		for k, v := range kv {
			if v == nil {
				delete(m.data[b], k)
			} else {
				m.data[b][k] = *v
			}
		}
	}
	return nil
}

func (m *memBackend) init() error { return nil }

// close keeps the data: a memory "reopen" in tests shares it, like a file outliving a process.
func (m *memBackend) close() error { return nil }

type memTxn struct {
	base     map[string]map[string][]byte
	writable bool
	over     map[string]map[string]*[]byte // staged writes; a nil pointer is a delete
}

func (t *memTxn) get(bucket, key []byte) []byte {
	if kv, ok := t.over[string(bucket)]; ok {
		if v, ok := kv[string(key)]; ok {
			if v == nil {
				return nil
			}
			return *v
		}
	}
	return t.base[string(bucket)][string(key)]
}

func (t *memTxn) stage(bucket, key []byte, v *[]byte) error {
	if !t.writable {
		return errReadOnlyTxn
	}
	if _, ok := t.base[string(bucket)]; !ok {
		return errNoBucket
	}
	kv := t.over[string(bucket)]
	if kv == nil {
		kv = make(map[string]*[]byte)
		t.over[string(bucket)] = kv
	}
	kv[string(key)] = v
	return nil
}

func (t *memTxn) put(bucket, key, val []byte) error {
	v := bytes.Clone(val)
	if v == nil {
		v = []byte{}
	}
	return t.stage(bucket, key, &v)
}

func (t *memTxn) del(bucket, key []byte) error { return t.stage(bucket, key, nil) }

func (t *memTxn) scan(bucket, prefix []byte, fn func(k, v []byte) error) error {
	seen := make(map[string]bool)
	var keys []string
	for k := range t.base[string(bucket)] {
		if bytes.HasPrefix([]byte(k), prefix) {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range t.over[string(bucket)] {
		if !seen[k] && bytes.HasPrefix([]byte(k), prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys) // byte-wise, the same order as bbolt
	for _, k := range keys {
		v := t.get(bucket, []byte(k))
		if v == nil {
			continue
		}
		if err := fn([]byte(k), v); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTxn) clear(bucket []byte) error {
	var keys [][]byte
	_ = t.scan(bucket, nil, func(k, _ []byte) error {
		keys = append(keys, bytes.Clone(k))
		return nil
	})
	for _, k := range keys {
		if err := t.del(bucket, k); err != nil {
			return err
		}
	}
	return nil
}
