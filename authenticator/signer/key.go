package signer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"filippo.io/bigmod"
	"filippo.io/nistec"
)

var (
	// ErrInvalidKey reports a private scalar that is not 32 bytes in [1, n-1].
	ErrInvalidKey = errors.New("signer: invalid P-256 private key")
	// ErrKeyDestroyed reports use of a PrivateKey after Destroy.
	ErrKeyDestroyed = errors.New("signer: private key destroyed")
)

// PrivateKey is a P-256 private scalar parsed once for signing. It is safe for
// concurrent use; Destroy wipes the scalar and makes every later use fail
// with ErrKeyDestroyed. Formatting it with fmt never prints the scalar.
//
// The public key is computed on the first Public call and cached, not at
// parse time: a point multiplication costs as much as a whole fast-path
// request, and the request path (unwrap a credential, sign, wipe) never needs
// the public key.
type PrivateKey struct {
	mu      sync.RWMutex
	d       *bigmod.Nat // nil once destroyed
	dm      ordElement  // d·R mod n (Montgomery form), for the request path; wiped with d
	pubOnce sync.Once
	pub     *ecdsa.PublicKey // set by pubOnce; nil if destroyed before first use
}

// NewPrivateKey parses a 32-byte big-endian scalar, rejecting 0 and values ≥ n.
// The caller keeps ownership of scalar and should wipe it when done.
func NewPrivateKey(scalar []byte) (*PrivateKey, error) {
	if len(scalar) != 32 {
		return nil, ErrInvalidKey
	}
	d, err := bigmod.NewNat().SetBytes(scalar, order)
	if err != nil || d.IsZero() == 1 {
		return nil, ErrInvalidKey
	}
	// d in [1, n-1] always has a valid public point, so deferring its
	// computation to Public cannot turn a rejected key into an accepted one.
	k := &PrivateKey{d: d}
	var b [32]byte
	var x ordElement
	copy(b[:], scalar)
	ordFromBytes(&x, &b) // < n: bigmod checked it
	ordMul(&k.dm, &x, &ordRR)
	clear(b[:])
	clear(x[:])
	return k, nil
}

// PrivateKeyFromECDSA converts a P-256 crypto/ecdsa key.
func PrivateKeyFromECDSA(k *ecdsa.PrivateKey) (*PrivateKey, error) {
	if k == nil || k.Curve != elliptic.P256() {
		return nil, ErrInvalidKey
	}
	b, err := k.Bytes()
	if err != nil {
		return nil, ErrInvalidKey
	}
	defer clear(b)
	return NewPrivateKey(b)
}

// GenerateKey draws a uniform scalar in [1, n-1] from random (crypto/rand
// when nil) by rejection sampling.
func GenerateKey(random io.Reader) (*PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	var b [32]byte
	defer clear(b[:])
	for {
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return nil, fmt.Errorf("signer: reading key randomness: %w", err)
		}
		k, err := NewPrivateKey(b[:])
		if err == nil {
			return k, nil
		}
		if !errors.Is(err, ErrInvalidKey) {
			return nil, err
		}
	}
}

// Public returns the public key, computing it on the first call and caching
// it. A key obtained before Destroy stays valid after it; on a key destroyed
// before Public was ever called it returns nil. Callers must not modify it.
func (k *PrivateKey) Public() *ecdsa.PublicKey {
	k.pubOnce.Do(func() {
		k.mu.RLock()
		defer k.mu.RUnlock()
		if k.d == nil {
			return
		}
		k.pub = publicFromNat(k.d)
	})
	return k.pub
}

// publicFromNat computes d·G. It cannot fail for d in [1, n-1], which
// NewPrivateKey guarantees; the nil returns only guard that invariant.
func publicFromNat(d *bigmod.Nat) *ecdsa.PublicKey {
	var b [32]byte
	defer clear(b[:])
	natToBytes(&b, d)
	p, err := nistec.NewP256Point().ScalarBaseMult(b[:])
	if err != nil {
		return nil
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), p.Bytes())
	if err != nil {
		return nil
	}
	return pub
}

// Bytes returns a fresh copy of the 32-byte big-endian scalar, for wrapping
// into storage; the caller should wipe it after use.
func (k *PrivateKey) Bytes() ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.d == nil {
		return nil, ErrKeyDestroyed
	}
	var out [32]byte
	natToBytes(&out, k.d)
	return out[:], nil
}

// ECDSA returns an independent crypto/ecdsa copy of the key, for APIs that
// need a crypto.Signer (such as building an attestation certificate).
func (k *PrivateKey) ECDSA() (*ecdsa.PrivateKey, error) {
	b, err := k.Bytes()
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return ecdsa.ParseRawPrivateKey(elliptic.P256(), b)
}

// Destroy wipes the scalar. It is idempotent and waits for signatures in
// progress with this key to finish.
func (k *PrivateKey) Destroy() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.d != nil {
		clear(k.d.Bits())
		k.d = nil
		clear(k.dm[:])
	}
}

// String describes the key without revealing the scalar.
func (k *PrivateKey) String() string { return "signer.PrivateKey(P-256)" }

// GoString is String, so that %#v cannot dump the scalar.
func (k *PrivateKey) GoString() string { return k.String() }

// Format makes every fmt verb print String, never the struct fields.
func (k *PrivateKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }
