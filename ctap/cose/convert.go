package cose

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
)

// FromUncompressed builds an EC2 P-256 key from a SEC 1 uncompressed point
// (0x04‖x‖y, 65 bytes), the form U2F and crypto/ecdh use.
func FromUncompressed(alg Algorithm, point []byte) (Key, error) {
	if len(point) != 1+2*CoordinateSize || point[0] != uncompressedPoint {
		return Key{}, newError(ctap.ErrInvalidParameter, "not an uncompressed P-256 point")
	}
	k := Key{Type: KeyTypeEC2, Alg: alg, Curve: CurveP256}
	copy(k.X[:], point[1:1+CoordinateSize])
	copy(k.Y[:], point[1+CoordinateSize:])
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

// FromECDSA builds an EC2 key with the given algorithm (normally AlgES256).
func FromECDSA(alg Algorithm, pub *ecdsa.PublicKey) (Key, error) {
	if pub == nil || pub.Curve != elliptic.P256() {
		return Key{}, newError(ctap.ErrUnsupportedAlgorithm, "ECDSA key is not on P-256")
	}
	b, err := pub.Bytes()
	if err != nil {
		return Key{}, newError(ctap.ErrInvalidParameter, "ECDSA key is not a valid P-256 point")
	}
	return FromUncompressed(alg, b)
}

// FromECDH builds the key-agreement form (alg ECDH-ES+HKDF-256) of a P-256 ECDH key.
func FromECDH(pub *ecdh.PublicKey) (Key, error) {
	if pub == nil || pub.Curve() != ecdh.P256() {
		return Key{}, newError(ctap.ErrUnsupportedAlgorithm, "ECDH key is not on P-256")
	}
	return FromUncompressed(AlgECDHESHKDF256, pub.Bytes())
}

// FromEd25519 builds an OKP Ed25519 key (alg EdDSA).
func FromEd25519(pub ed25519.PublicKey) (Key, error) {
	if len(pub) != ed25519.PublicKeySize {
		return Key{}, newError(ctap.ErrInvalidParameter, fmt.Sprintf("Ed25519 key is %d bytes", len(pub)))
	}
	k := Key{Type: KeyTypeOKP, Alg: AlgEdDSA, Curve: CurveEd25519}
	copy(k.X[:], pub)
	return k, nil
}

// Uncompressed returns the SEC 1 uncompressed point of an EC2 key.
func (k Key) Uncompressed() ([]byte, error) {
	if err := k.requireEC2(); err != nil {
		return nil, err
	}
	return k.uncompressed(), nil
}

// ECDSA returns k as a crypto/ecdsa key; the point is checked to be on the curve.
func (k Key) ECDSA() (*ecdsa.PublicKey, error) {
	if err := k.requireEC2(); err != nil {
		return nil, err
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k.uncompressed())
	if err != nil {
		return nil, newError(ctap.ErrInvalidParameter, "point is not on P-256")
	}
	return pub, nil
}

// ECDH returns k as a crypto/ecdh key; the point is checked to be on the curve.
func (k Key) ECDH() (*ecdh.PublicKey, error) {
	if err := k.requireEC2(); err != nil {
		return nil, err
	}
	pub, err := ecdh.P256().NewPublicKey(k.uncompressed())
	if err != nil {
		return nil, newError(ctap.ErrInvalidParameter, "point is not on P-256")
	}
	return pub, nil
}

// Ed25519 returns k as a crypto/ed25519 key. Only the length is checked: Go's
// standard library offers no point decoder, and an invalid point fails every
// verification anyway.
func (k Key) Ed25519() (ed25519.PublicKey, error) {
	if k.Type != KeyTypeOKP || k.Curve != CurveEd25519 {
		return nil, newError(ctap.ErrUnsupportedAlgorithm, "not an Ed25519 key")
	}
	return ed25519.PublicKey(append([]byte(nil), k.X[:]...)), nil
}

// ErrBadSignature is returned by Verify for a signature that does not verify.
var ErrBadSignature = errors.New("cose: signature does not verify")

// Verify checks a WebAuthn-style signature made with the private half of k:
// ES256 signs SHA-256(message) with an ASN.1 DER signature, EdDSA signs message.
func (k Key) Verify(message, signature []byte) error {
	switch {
	case k.Type == KeyTypeEC2 && k.Alg == AlgES256:
		pub, err := k.ECDSA()
		if err != nil {
			return err
		}
		digest := sha256.Sum256(message)
		if !ecdsa.VerifyASN1(pub, digest[:], signature) {
			return ErrBadSignature
		}
	case k.Type == KeyTypeOKP && k.Alg == AlgEdDSA:
		if !ed25519.Verify(ed25519.PublicKey(k.X[:]), message, signature) {
			return ErrBadSignature
		}
	default:
		return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("no signature verification for algorithm %d", k.Alg))
	}
	return nil
}

func (k Key) requireEC2() error {
	if k.Type != KeyTypeEC2 || k.Curve != CurveP256 {
		return newError(ctap.ErrUnsupportedAlgorithm, "not an EC2 P-256 key")
	}
	return nil
}
