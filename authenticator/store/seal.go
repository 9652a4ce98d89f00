package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Sealing keeps a copied state file from being a copied key. With a state key, every value the
// store writes is sealed with AES-256-GCM: credential private keys, CredRandom, largeBlob keys,
// the PIN hash, the master secret (from which credential IDs of non-resident credentials are
// sealed), the attestation keys kept as blobs, and the rest of each record with them. Stored in
// clear are the bucket keys (credential IDs; RP IDs and user IDs in the slot index; fingerprint
// template IDs; blob names), the slot index's values (credential IDs again), the schema version
// and the seal record.
//
// The key file is read once (LoadStateKey) and HKDF-SHA256 extracts a pseudorandom key from its
// bytes. Each state file holds a random salt in its seal record; opening the file expands the
// extracted key with that salt into the file's own AES key, once, so no request ever runs a KDF.
// Each value is sealed under a fresh random nonce, with its bucket and key as additional data, so
// a sealed value moved to another place in the file does not open there. The seal record also
// holds a sealed check value: a wrong key is told apart from a damaged value when the file opens.

// MinStateKeyLen is the least a state key file must hold: 32 bytes, meant to be random
// (head -c 32 /dev/urandom). HKDF is not a password hash; a typed passphrase is not enough.
const MinStateKeyLen = 32

const (
	maxStateKeyFile = 64 << 10
	formatSealed    = 2 // first byte of a sealed value; framed values begin with formatV1
	sealSaltLen     = 32
	sealAlg         = "A256GCM"
	sealKDF         = "HKDF-SHA256"
)

var (
	keySeal        = []byte("seal") // bucketMeta: the seal record, stored in clear
	stateKeyLabel  = "fidolab state key v1"
	sealCheckPlain = []byte("fidolab sealed state")
)

// StateKey is a key to seal state files with. It never appears in logs (String hides it).
type StateKey struct{ prk []byte }

// String keeps the key out of logs.
func (*StateKey) String() string { return "StateKey(…)" }

// NewStateKey extracts a state key from secret, which must be at least MinStateKeyLen bytes.
func NewStateKey(secret []byte) (*StateKey, error) {
	if len(secret) < MinStateKeyLen {
		return nil, fmt.Errorf("a state key needs at least %d random bytes, got %d (make one with: head -c 32 /dev/urandom > FILE)", MinStateKeyLen, len(secret))
	}
	prk, err := hkdf.Extract(sha256.New, secret, []byte(stateKeyLabel))
	if err != nil {
		return nil, err
	}
	return &StateKey{prk: prk}, nil
}

// LoadStateKey reads a state key file: a regular file of MinStateKeyLen to 64 KiB bytes that only
// its owner may read (mode 0600 or 0400; wider is refused, as for the state file).
func LoadStateKey(path string) (*StateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("state key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("state key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("state key file %s: not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: state key file %s has mode %04o, want 0600 or 0400 (chmod 600 %s)", ErrPermissions, path, fi.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("state key file %s: %w", path, err)
	}
	defer clear(b)
	if len(b) > maxStateKeyFile {
		return nil, fmt.Errorf("state key file %s: larger than %d bytes; is it the right file?", path, maxStateKeyFile)
	}
	k, err := NewStateKey(b)
	if err != nil {
		return nil, fmt.Errorf("state key file %s: %w", path, err)
	}
	return k, nil
}

// WithStateKey seals a new state file with k, and opens a sealed one. A sealed file opened without
// it is ErrSealed, with another key ErrWrongKey; an unsealed file opened with it is ErrNotSealed.
func WithStateKey(k *StateKey) Option { return func(o *options) { o.key = k } }

type sealRecord struct {
	Alg   string `cbor:"1,keyasint"`
	KDF   string `cbor:"2,keyasint"`
	Salt  []byte `cbor:"3,keyasint"`
	Check []byte `cbor:"4,keyasint"`
}

// sealer is one file's AEAD, derived once when the file is opened.
type sealer struct{ aead cipher.AEAD }

func (k *StateKey) sealer(salt []byte) (*sealer, error) {
	key, err := hkdf.Expand(sha256.New, k.prk, "fidolab state seal v1 "+string(salt), 32)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// newSealRecord makes the seal record of a file about to be sealed with k.
func newSealRecord(k *StateKey) (*sealer, []byte, error) {
	salt := make([]byte, sealSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return nil, nil, err
	}
	s, err := k.sealer(salt)
	if err != nil {
		return nil, nil, err
	}
	enc, err := encodeRecord(sealRecord{Alg: sealAlg, KDF: sealKDF, Salt: salt, Check: s.seal(bucketMeta, keySeal, sealCheckPlain)})
	if err != nil {
		return nil, nil, err
	}
	return s, enc, nil
}

// openSealRecord derives the file's sealer from its seal record and checks k against it.
func openSealRecord(k *StateKey, enc []byte) (*sealer, error) {
	var r sealRecord
	if err := decodeRecord("seal record", enc, &r); err != nil {
		return nil, err
	}
	if r.Alg != sealAlg || r.KDF != sealKDF || len(r.Salt) != sealSaltLen {
		return nil, fmt.Errorf("%w: seal record: algorithm %q, KDF %q, %d-byte salt (this build seals with %s, %s)",
			ErrVersion, r.Alg, r.KDF, len(r.Salt), sealAlg, sealKDF)
	}
	s, err := k.sealer(r.Salt)
	if err != nil {
		return nil, err
	}
	if got, ok := s.open(bucketMeta, keySeal, r.Check); !ok || !bytes.Equal(got, sealCheckPlain) {
		return nil, ErrWrongKey
	}
	return s, nil
}

const aadLabel = "fidolab state v1\x00"

// aad binds a sealed value to where it is stored (one allocation: it is on every sealed read).
func aad(bucket, key []byte) []byte {
	a := make([]byte, 0, len(aadLabel)+binary.MaxVarintLen64+len(bucket)+len(key))
	a = append(a, aadLabel...)
	a = binary.AppendUvarint(a, uint64(len(bucket)))
	a = append(a, bucket...)
	return append(a, key...)
}

func (s *sealer) seal(bucket, key, val []byte) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(val)+s.aead.Overhead())
	out[0] = formatSealed
	if _, err := rand.Read(out[1:]); err != nil {
		panic(err) // crypto/rand does not fail on Linux; the runtime treats it as fatal already
	}
	return s.aead.Seal(out, out[1:], val, aad(bucket, key))
}

func (s *sealer) open(bucket, key, data []byte) ([]byte, bool) {
	ns := s.aead.NonceSize()
	if len(data) < 1+ns+s.aead.Overhead() || data[0] != formatSealed {
		return nil, false
	}
	pt, err := s.aead.Open(nil, data[1:1+ns], data[1+ns:], aad(bucket, key))
	return pt, err == nil
}

// inClear lists the values stored without sealing: what must be read before the key is known, and
// the slot index, whose values are credential IDs, in clear anyway as the keys of bucketCred (a
// credential record names its own ID and slot, sealed, and is checked against the index on read).
func inClear(bucket, key []byte) bool {
	return bytes.Equal(bucket, bucketUser) ||
		bytes.Equal(bucket, bucketMeta) && (bytes.Equal(key, keyVersion) || bytes.Equal(key, keySeal))
}

// sealedBackend seals values on the way in and opens them on the way out. A value that does not
// open (damaged: a wrong key is refused when the file opens) is handed on as stored; it begins with
// formatSealed, which unframe reports as ErrCorrupt, so it is an error and never a silent absence.
type sealedBackend struct {
	backend
	s *sealer
}

func (b *sealedBackend) view(fn func(txn) error) error {
	return b.backend.view(func(t txn) error { return fn(sealedTxn{t, b.s}) })
}

func (b *sealedBackend) update(fn func(txn) error) error {
	return b.backend.update(func(t txn) error { return fn(sealedTxn{t, b.s}) })
}

type sealedTxn struct {
	txn
	s *sealer
}

func (t sealedTxn) get(bucket, key []byte) []byte {
	v := t.txn.get(bucket, key)
	if v == nil || inClear(bucket, key) {
		return v
	}
	if pt, ok := t.s.open(bucket, key, v); ok {
		return pt
	}
	return v
}

func (t sealedTxn) put(bucket, key, val []byte) error {
	if inClear(bucket, key) {
		return t.txn.put(bucket, key, val)
	}
	return t.txn.put(bucket, key, t.s.seal(bucket, key, val))
}

func (t sealedTxn) scan(bucket, prefix []byte, fn func(k, v []byte) error) error {
	return t.txn.scan(bucket, prefix, func(k, v []byte) error {
		if !inClear(bucket, k) {
			if pt, ok := t.s.open(bucket, k, v); ok {
				v = pt
			}
		}
		return fn(k, v)
	})
}

// Sealed reports whether s seals what it stores.
func Sealed(s Store) bool {
	d, ok := s.(*db)
	if !ok {
		return false
	}
	_, sealed := d.b.(*sealedBackend)
	return sealed
}

// SealFile seals the unsealed state file at path with k. It writes a sealed copy beside the file and
// renames it over path, so the file is whole and either plain or sealed at every moment. The plain
// file's disk blocks are released, not overwritten: where a plain copy may survive (backups, SSD
// blocks, snapshots), treat the credentials in it as exposed.
func SealFile(path string, k *StateKey) error {
	src, err := OpenFile(path)
	if err != nil {
		return err
	}
	defer src.Close()
	from := src.(*db)
	if Sealed(src) {
		return fmt.Errorf("the state file is sealed already")
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".seal-*")
	if err != nil {
		return fmt.Errorf("store: sealing: %w", err)
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name) // a no-op once renamed
	o := from.o
	o.key = k
	b, err := openBolt(name, o)
	if err != nil {
		return err
	}
	to, err := open(b, o, true)
	if err != nil {
		_ = b.close()
		return err
	}
	err = from.view(func(st txn) error {
		return to.update(func(dt txn) error {
			for _, bucket := range allBuckets {
				err := st.scan(bucket, nil, func(k, v []byte) error {
					if bytes.Equal(bucket, bucketMeta) && (bytes.Equal(k, keyVersion) || bytes.Equal(k, keySeal)) {
						return nil // the new file has its own
					}
					return dt.put(bucket, bytes.Clone(k), v)
				})
				if err != nil {
					return err
				}
			}
			return nil
		})
	})
	if cerr := to.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: sealing: %w", err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("store: sealing: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
