// Package cose holds the COSE_Key public keys (RFC 9052/9053) that CTAP 2.1 carries:
// EC2 P-256 keys for ES256 credentials and for the PIN/UV key agreement, and OKP
// Ed25519 keys for EdDSA credentials.
package cose

import (
	"crypto/ecdh"
	"fmt"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// KeyType is the COSE "kty" parameter.
type KeyType int64

// Key types used by CTAP 2.1.
const (
	KeyTypeOKP KeyType = 1
	KeyTypeEC2 KeyType = 2
)

// Curve is the COSE "crv" parameter.
type Curve int64

// Curves used by CTAP 2.1.
const (
	CurveP256    Curve = 1
	CurveEd25519 Curve = 6
)

// Algorithm is a COSEAlgorithmIdentifier.
type Algorithm int64

// Algorithms CTAP 2.1 names. RS256 is listed so that credential parameters naming it
// can be recognised; this package builds no RSA keys.
const (
	AlgES256         Algorithm = -7
	AlgEdDSA         Algorithm = -8
	AlgECDHESHKDF256 Algorithm = -25
	AlgRS256         Algorithm = -257
)

// CoordinateSize is the fixed size of a P-256 coordinate and of an Ed25519 key.
const CoordinateSize = 32

const uncompressedPoint = 0x04

// COSE_Key map labels.
const (
	labelKty = 1
	labelAlg = 3
	labelCrv = -1
	labelX   = -2
	labelY   = -3
)

// Key is a COSE public key. Coordinates are fixed-size arrays on purpose: a
// variable-length big-integer form loses leading zero bytes for about one key in 256.
type Key struct {
	Type  KeyType
	Alg   Algorithm
	Curve Curve
	X     [CoordinateSize]byte
	Y     [CoordinateSize]byte // EC2 only; zero for OKP
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CTAP2EncOptions().EncMode(); err != nil {
		panic(err) // static options: fails only if the library changes incompatibly
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:       cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels: 4,
		MaxMapPairs:     16,
		IndefLength:     cbor.IndefLengthForbidden,
		TagsMd:          cbor.TagsForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// Validate checks that k is a key this package supports and, for EC2, that the point
// lies on P-256. Errors are *Error carrying the CTAP status to return.
func (k Key) Validate() error {
	switch k.Type {
	case KeyTypeEC2:
		if k.Curve != CurveP256 {
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("EC2 curve %d is not supported", k.Curve))
		}
		if k.Alg != AlgES256 && k.Alg != AlgECDHESHKDF256 {
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for P-256", k.Alg))
		}
		if _, err := ecdh.P256().NewPublicKey(k.uncompressed()); err != nil {
			return newError(ctap.ErrInvalidParameter, "point is not on P-256")
		}
	case KeyTypeOKP:
		if k.Curve != CurveEd25519 {
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("OKP curve %d is not supported", k.Curve))
		}
		if k.Alg != AlgEdDSA {
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for Ed25519", k.Alg))
		}
		if k.Y != ([CoordinateSize]byte{}) {
			return newError(ctap.ErrInvalidParameter, "OKP key has a y coordinate")
		}
	default:
		return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("key type %d is not supported", k.Type))
	}
	return nil
}

// Marshal encodes k in CTAP2 canonical CBOR after validating it.
func (k Key) Marshal() ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	m := map[int]any{
		labelKty: int64(k.Type),
		labelAlg: int64(k.Alg),
		labelCrv: int64(k.Curve),
		labelX:   k.X[:],
	}
	if k.Type == KeyTypeEC2 {
		m[labelY] = k.Y[:]
	}
	return encMode.Marshal(m)
}

// MarshalCBOR implements cbor.Marshaler so a Key can be a field of a request or response.
func (k Key) MarshalCBOR() ([]byte, error) { return k.Marshal() }

// UnmarshalCBOR implements cbor.Unmarshaler with the same checks as Unmarshal.
func (k *Key) UnmarshalCBOR(data []byte) error {
	parsed, err := Unmarshal(data)
	if err != nil {
		return err
	}
	*k = parsed
	return nil
}

// Unmarshal decodes and validates a COSE_Key. Labels this package does not know
// (kid, key_ops, …) are ignored, as a hardware key does; known labels must be present
// with the right type and size. Errors are *Error carrying the CTAP status to return.
func Unmarshal(data []byte) (Key, error) {
	var m map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(data, &m); err != nil {
		return Key{}, decodeError("COSE_Key", err)
	}
	if m == nil || isNull(data) { // null decodes to a nil map without error
		return Key{}, newError(ctap.ErrCBORUnexpectedType, "COSE_Key is not a map")
	}
	var k Key
	kty, err := intLabel(m, labelKty, "kty")
	if err != nil {
		return Key{}, err
	}
	alg, err := intLabel(m, labelAlg, "alg")
	if err != nil {
		return Key{}, err
	}
	crv, err := intLabel(m, labelCrv, "crv")
	if err != nil {
		return Key{}, err
	}
	k.Type, k.Alg, k.Curve = KeyType(kty), Algorithm(alg), Curve(crv)
	if err := coordLabel(m, labelX, "x", &k.X); err != nil {
		return Key{}, err
	}
	switch k.Type {
	case KeyTypeEC2:
		if err := coordLabel(m, labelY, "y", &k.Y); err != nil {
			return Key{}, err
		}
	case KeyTypeOKP:
		if _, ok := m[labelY]; ok {
			return Key{}, newError(ctap.ErrInvalidParameter, "OKP key has a y coordinate")
		}
	}
	if err := k.Validate(); err != nil {
		return Key{}, err
	}
	return k, nil
}

func intLabel(m map[int64]cbor.RawMessage, label int64, name string) (int64, error) {
	raw, ok := m[label]
	if !ok {
		return 0, newError(ctap.ErrMissingParameter, name+" is missing")
	}
	if isNull(raw) {
		return 0, newError(ctap.ErrCBORUnexpectedType, name+" is null")
	}
	var v int64
	if err := decMode.Unmarshal(raw, &v); err != nil {
		return 0, decodeError(name, err)
	}
	return v, nil
}

func coordLabel(m map[int64]cbor.RawMessage, label int64, name string, dst *[CoordinateSize]byte) error {
	raw, ok := m[label]
	if !ok {
		return newError(ctap.ErrMissingParameter, name+" is missing")
	}
	if isNull(raw) {
		return newError(ctap.ErrCBORUnexpectedType, name+" is null")
	}
	var b ctap.Bytes // a byte string only: an array of small integers is not a coordinate
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return decodeError(name, err)
	}
	if len(b) != CoordinateSize {
		return newError(ctap.ErrInvalidParameter, fmt.Sprintf("%s is %d bytes, want %d", name, len(b), CoordinateSize))
	}
	copy(dst[:], b)
	return nil
}

// isNull reports CBOR null or undefined, which the library decodes into a zero value
// without error but which CTAP treats as an item of the wrong type.
func isNull(raw cbor.RawMessage) bool {
	return len(raw) == 1 && (raw[0] == 0xf6 || raw[0] == 0xf7)
}

// uncompressed returns the SEC 1 uncompressed point 0x04‖x‖y.
func (k Key) uncompressed() []byte {
	b := make([]byte, 0, 1+2*CoordinateSize)
	b = append(b, uncompressedPoint)
	b = append(b, k.X[:]...)
	return append(b, k.Y[:]...)
}
