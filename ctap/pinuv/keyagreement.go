package pinuv

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"io"
	"sync"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fidolab/fidolab/ctap/cose"
)

// KeyAgreement is the authenticator's ephemeral P-256 key-agreement key. The
// authenticator regenerates it at power-up and whenever the spec says so (after a
// wrong PIN, for instance). It is safe for concurrent use.
type KeyAgreement struct {
	mu   sync.RWMutex
	priv *ecdh.PrivateKey
}

// NewKeyAgreement draws a key from r (nil means crypto/rand).
func NewKeyAgreement(r io.Reader) (*KeyAgreement, error) {
	k := &KeyAgreement{}
	if err := k.Regenerate(r); err != nil {
		return nil, err
	}
	return k, nil
}

// Regenerate replaces the key with a fresh one drawn from r (nil means crypto/rand).
// Any shared secret derived before stays valid only on the platform side, which is the
// point: the platform must fetch the new public key.
func (k *KeyAgreement) Regenerate(r io.Reader) error {
	priv, err := generateP256(r)
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.priv = priv
	k.mu.Unlock()
	return nil
}

// PublicCOSE returns the public key as getKeyAgreement reports it (alg -25).
func (k *KeyAgreement) PublicCOSE() cose.Key {
	k.mu.RLock()
	pub := k.priv.PublicKey()
	k.mu.RUnlock()
	key, err := cose.FromECDH(pub)
	if err != nil {
		panic("pinuv: own P-256 key does not convert: " + err.Error()) // unreachable: the key is ours and valid
	}
	return key
}

// SharedSecret runs ECDH with the platform's key and derives the protocol's shared
// secret. A peer key that is not an ECDH-ES+HKDF-256 P-256 point is rejected with an
// error carrying the CTAP status to return.
func (k *KeyAgreement) SharedSecret(p Protocol, peer cose.Key) ([]byte, error) {
	k.mu.RLock()
	priv := k.priv
	k.mu.RUnlock()
	return deriveShared(p, priv, peer)
}

// Encapsulate is the platform's half: it makes an ephemeral key, agrees with the
// authenticator's key and returns the platform key to send and the shared secret.
func Encapsulate(p Protocol, r io.Reader, peer cose.Key) (platformKey cose.Key, sharedSecret []byte, err error) {
	priv, err := generateP256(r)
	if err != nil {
		return cose.Key{}, nil, err
	}
	secret, err := deriveShared(p, priv, peer)
	if err != nil {
		return cose.Key{}, nil, err
	}
	platformKey, err = cose.FromECDH(priv.PublicKey())
	if err != nil {
		return cose.Key{}, nil, err
	}
	return platformKey, secret, nil
}

func deriveShared(p Protocol, priv *ecdh.PrivateKey, peer cose.Key) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("pinuv: no protocol")
	}
	if peer.Type != cose.KeyTypeEC2 || peer.Curve != cose.CurveP256 || peer.Alg != cose.AlgECDHESHKDF256 {
		return nil, fmt.Errorf("pinuv: peer key is not an ECDH-ES+HKDF-256 P-256 key: %w", ctap.ErrInvalidParameter)
	}
	pub, err := peer.ECDH()
	if err != nil {
		return nil, fmt.Errorf("pinuv: peer key: %w", err)
	}
	// crypto/ecdh returns the x-coordinate as a fixed 32-byte string, never a
	// shortened big integer.
	z, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("pinuv: ECDH: %w", ctap.ErrInvalidParameter)
	}
	return p.KDF(z)
}

// generateP256 reads candidate scalars from r until one is a valid P-256 private key
// (rejection sampling). It reads r directly, rather than calling GenerateKey, because
// since Go 1.26 GenerateKey ignores its reader and tests need reproducible keys.
func generateP256(r io.Reader) (*ecdh.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var scalar [32]byte
	// The chance that a random 256-bit string is not below the group order is about
	// 2^-32, so a handful of tries is plenty; the bound only stops a broken reader.
	for range 64 {
		if _, err := io.ReadFull(r, scalar[:]); err != nil {
			return nil, fmt.Errorf("pinuv: reading key randomness: %w", err)
		}
		if priv, err := ecdh.P256().NewPrivateKey(scalar[:]); err == nil {
			clear(scalar[:])
			return priv, nil
		}
	}
	return nil, fmt.Errorf("pinuv: randomness source never produced a valid P-256 scalar")
}

// NewToken returns a fresh 32-byte pinUvAuthToken from r (nil means crypto/rand).
// A failing reader is a broken process, not bad input, so it panics, as crypto/rand
// itself does.
func NewToken(r io.Reader) []byte {
	if r == nil {
		r = rand.Reader
	}
	t := make([]byte, TokenSize)
	if _, err := io.ReadFull(r, t); err != nil {
		panic("pinuv: token randomness source failed")
	}
	return t
}
