package cose

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math/big"

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

// FromECDSA builds an EC2 key: P-256 with the given algorithm (normally AlgES256), P-384 and
// P-521 with the one algorithm of their curve (ES384, ES512; alg must name it).
func FromECDSA(alg Algorithm, pub *ecdsa.PublicKey) (Key, error) {
	if pub == nil {
		return Key{}, newError(ctap.ErrUnsupportedAlgorithm, "no ECDSA key")
	}
	b, err := pub.Bytes()
	if err != nil {
		return Key{}, newError(ctap.ErrInvalidParameter, "ECDSA key is not a valid point")
	}
	switch pub.Curve {
	case elliptic.P256():
		return FromUncompressed(alg, b)
	case elliptic.P384(), elliptic.P521():
		crv := CurveP384
		if pub.Curve == elliptic.P521() {
			crv = CurveP521
		}
		n := curveSize(crv)
		k := Key{Type: KeyTypeEC2, Alg: alg, Curve: crv, Wide: &Wide{X: b[1 : 1+n], Y: b[1+n:]}}
		if err := k.Validate(); err != nil {
			return Key{}, err
		}
		return k, nil
	}
	return Key{}, newError(ctap.ErrUnsupportedAlgorithm, "ECDSA curve is not P-256, P-384 or P-521")
}

// FromRSA builds an RSA key for RS256 or PS256.
func FromRSA(alg Algorithm, pub *rsa.PublicKey) (Key, error) {
	if pub == nil || pub.N == nil {
		return Key{}, newError(ctap.ErrInvalidParameter, "no RSA key")
	}
	k := Key{Type: KeyTypeRSA, Alg: alg, Wide: &Wide{N: pub.N.Bytes(), E: big.NewInt(int64(pub.E)).Bytes()}}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
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

// ECDSA returns an EC2 key (P-256, P-384 or P-521) as a crypto/ecdsa key; the point is
// checked to be on the curve.
func (k Key) ECDSA() (*ecdsa.PublicKey, error) {
	if k.Type != KeyTypeEC2 || curveSize(k.Curve) == 0 {
		return nil, newError(ctap.ErrUnsupportedAlgorithm, "not an EC2 key")
	}
	curve := map[Curve]elliptic.Curve{CurveP256: elliptic.P256(), CurveP384: elliptic.P384(), CurveP521: elliptic.P521()}[k.Curve]
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, k.uncompressed())
	if err != nil {
		return nil, newError(ctap.ErrInvalidParameter, "point is not on the curve")
	}
	return pub, nil
}

// RSA returns an RSA key as a crypto/rsa key.
func (k Key) RSA() (*rsa.PublicKey, error) {
	if k.Type != KeyTypeRSA || k.Wide == nil {
		return nil, newError(ctap.ErrUnsupportedAlgorithm, "not an RSA key")
	}
	if err := validRSA(k.Wide.N, k.Wide.E); err != nil {
		return nil, err
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(k.Wide.N), E: int(new(big.Int).SetBytes(k.Wide.E).Int64())}, nil
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

// Verify checks a WebAuthn-style signature made with the private half of k: ES256, ES384 and
// ES512 sign SHA-256, SHA-384 and SHA-512 of message with an ASN.1 DER signature, EdDSA signs
// message, RS256 is RSASSA-PKCS1-v1_5 and PS256 RSASSA-PSS (salt of the hash's length) over
// SHA-256 (RFC 8812 §2, RFC 8230 §2).
func (k Key) Verify(message, signature []byte) error {
	switch {
	case k.Type == KeyTypeEC2 && (k.Alg == AlgES256 || k.Alg == AlgES384 || k.Alg == AlgES512):
		pub, err := k.ECDSA()
		if err != nil {
			return err
		}
		if !ecdsa.VerifyASN1(pub, Digest(k.Alg, message), signature) {
			return ErrBadSignature
		}
	case k.Type == KeyTypeOKP && k.Alg == AlgEdDSA:
		if !ed25519.Verify(ed25519.PublicKey(k.X[:]), message, signature) {
			return ErrBadSignature
		}
	case k.Type == KeyTypeRSA && (k.Alg == AlgRS256 || k.Alg == AlgPS256):
		pub, err := k.RSA()
		if err != nil {
			return err
		}
		digest := Digest(k.Alg, message)
		if k.Alg == AlgRS256 {
			err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest, signature)
		} else {
			err = rsa.VerifyPSS(pub, crypto.SHA256, digest, signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
		if err != nil {
			return ErrBadSignature
		}
	default:
		return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("no signature verification for algorithm %d", k.Alg))
	}
	return nil
}

// Digest is the hash a signature algorithm signs: SHA-384 for ES384, SHA-512 for ES512, SHA-256
// for the others that hash (nil for EdDSA, which signs the message itself).
func Digest(alg Algorithm, message []byte) []byte {
	switch alg {
	case AlgES384:
		d := sha512.Sum384(message)
		return d[:]
	case AlgES512:
		d := sha512.Sum512(message)
		return d[:]
	case AlgEdDSA:
		return nil
	}
	d := sha256.Sum256(message)
	return d[:]
}

func (k Key) requireEC2() error {
	if k.Type != KeyTypeEC2 || k.Curve != CurveP256 {
		return newError(ctap.ErrUnsupportedAlgorithm, "not an EC2 P-256 key")
	}
	return nil
}
