package store

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// subject is a store under test plus a way to reopen its state, as a restart (clean) or as a
// process that died without Close (crash).
type subject struct {
	Store
	reopen func(t *testing.T, crash bool)
}

type implementation struct {
	name string
	open func(t *testing.T, opts ...Option) *subject
}

// implementations are the two twins; every conformance test runs against both.
var implementations = []implementation{
	{name: "file", open: openFileSubject},
	{name: "memory", open: openMemorySubject},
	{name: "file-sealed", open: func(t *testing.T, opts ...Option) *subject {
		return openFileSubject(t, append(opts, WithStateKey(testStateKey))...)
	}},
	{name: "memory-sealed", open: func(t *testing.T, opts ...Option) *subject {
		return openMemorySubject(t, append(opts, WithStateKey(testStateKey))...)
	}},
}

var testStateKey = func() *StateKey {
	k, err := NewStateKey([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		panic(err)
	}
	return k
}()

func openFileSubject(t *testing.T, opts ...Option) *subject {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "key.db")
	s, err := OpenFile(path, opts...)
	require.NoError(t, err)
	sub := &subject{Store: s}
	t.Cleanup(func() { _ = sub.Close() })
	gen := 0
	sub.reopen = func(t *testing.T, crash bool) {
		t.Helper()
		if crash {
			// What a killed process leaves behind is the file as of its last commit: copy it
			// while the old store is still open and never closed, and open the copy.
			data, err := os.ReadFile(path)
			require.NoError(t, err)
			gen++
			path = filepath.Join(dir, fmt.Sprintf("crash%d.db", gen))
			require.NoError(t, os.WriteFile(path, data, 0o600))
			old := sub.Store
			t.Cleanup(func() { _ = old.Close() })
		} else {
			require.NoError(t, sub.Close())
		}
		s, err := OpenFile(path, opts...)
		require.NoError(t, err)
		sub.Store = s
	}
	return sub
}

func openMemorySubject(t *testing.T, opts ...Option) *subject {
	t.Helper()
	m := newMemBackend()
	o := defaultOptions(opts)
	s, err := open(m, o, true)
	require.NoError(t, err)
	sub := &subject{Store: s}
	sub.reopen = func(t *testing.T, crash bool) {
		t.Helper()
		if !crash {
			require.NoError(t, sub.Close())
		}
		s, err := open(m, o, false)
		require.NoError(t, err)
		sub.Store = s
	}
	return sub
}

// forEach runs fn as a parallel subtest against every implementation.
func forEach(t *testing.T, fn func(t *testing.T, open func(t *testing.T, opts ...Option) *subject)) {
	t.Helper()
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			fn(t, impl.open)
		})
	}
}

// rawPut writes a value behind the store's back, to plant corrupt records.
func rawPut(t *testing.T, s Store, bucket, key, val []byte) {
	t.Helper()
	d, ok := s.(*db)
	require.True(t, ok)
	require.NoError(t, d.b.update(func(tx txn) error { return tx.put(bucket, key, val) }))
}

var credCounter atomic.Int64

func testCred(rpID string, userID []byte) *Credential {
	n := credCounter.Add(1)
	return &Credential{
		ID:              []byte(fmt.Sprintf("cred-%s-%x-%d", rpID, userID, n)),
		RPID:            rpID,
		RPName:          "RP " + rpID,
		UserID:          bytes.Clone(userID),
		UserName:        fmt.Sprintf("user-%x", userID),
		UserDisplayName: fmt.Sprintf("User %x", userID),
		Alg:             -7,
		PrivateKey:      bytes.Repeat([]byte{0xA5}, 32),
		CredProtect:     2,
		HMACSecret:      true,
		CredRandomUV:    bytes.Repeat([]byte{1}, 32),
		CredRandomNoUV:  bytes.Repeat([]byte{2}, 32),
		CredBlob:        []byte("blob"),
		LargeBlobKey:    bytes.Repeat([]byte{3}, 32),
	}
}

func ids(cs []*Credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = string(c.ID)
	}
	return out
}
