// Package cose holds the COSE_Key public keys (RFC 9052/9053, RFC 8230) that CTAP 2.1 carries:
// EC2 P-256 keys for ES256 credentials and for the PIN/UV key agreement, OKP Ed25519 keys for
// EdDSA credentials, EC2 P-384 and P-521 keys for ES384 and ES512, and RSA keys for RS256 and
// PS256.
package cose

import (
	"crypto/ecdh"
	"fmt"
	"math/big"

	"github.com/fidolab/fidolab/ctap"
	"github.com/fxamacker/cbor/v2"
)

// KeyType is the COSE "kty" parameter.
type KeyType int64

// Key types used by CTAP 2.1.
const (
	KeyTypeOKP KeyType = 1
	KeyTypeEC2 KeyType = 2
	KeyTypeRSA KeyType = 3
)

// Curve is the COSE "crv" parameter.
type Curve int64

// Curves used by CTAP 2.1.
const (
	CurveP256    Curve = 1
	CurveP384    Curve = 2
	CurveP521    Curve = 3
	CurveEd25519 Curve = 6
)

// Algorithm is a COSEAlgorithmIdentifier.
type Algorithm int64

// Algorithms of the IANA COSE registry that CTAP keys use.
const (
	AlgES256         Algorithm = -7
	AlgEdDSA         Algorithm = -8
	AlgECDHESHKDF256 Algorithm = -25
	AlgES384         Algorithm = -35
	AlgES512         Algorithm = -36
	AlgPS256         Algorithm = -37
	AlgRS256         Algorithm = -257
)

// RSA key sizes this package accepts (WebAuthn relying parties accept 2048-bit keys and up).
const (
	MinRSABits = 2048
	MaxRSABits = 4096
)

// CoordinateSize is the fixed size of a P-256 coordinate and of an Ed25519 key.
const CoordinateSize = 32

const uncompressedPoint = 0x04

// COSE_Key map labels (RFC 9053 §7.1, RFC 8230 §4).
const (
	labelKty = 1
	labelAlg = 3
	labelCrv = -1
	labelX   = -2
	labelY   = -3
	labelN   = -1 // RSA modulus
	labelE   = -2 // RSA public exponent
)

// Key is a COSE public key. Coordinates are fixed-size on purpose: a variable-length
// big-integer form loses leading zero bytes for about one key in 256. P-256 and Ed25519 keys,
// the ones on every request path (key agreement, ES256), use the X and Y arrays; the larger
// keys carry their parts in Wide.
type Key struct {
	Type  KeyType
	Alg   Algorithm
	Curve Curve
	X     [CoordinateSize]byte
	Y     [CoordinateSize]byte // EC2 only; zero for OKP
	// Wide holds the coordinates of a P-384 or P-521 key (each exactly the curve's size) or the
	// modulus and exponent of an RSA key; nil for P-256 and Ed25519 keys.
	Wide *Wide
}

// Wide is the part of a key that does not fit the P-256 arrays.
type Wide struct {
	X, Y []byte // EC2 P-384 (48 bytes each) or P-521 (66 bytes each)
	N, E []byte // RSA modulus and public exponent, big-endian without leading zeros
}

// curveSize is the coordinate size of an EC2 curve, 0 for a curve this package lacks.
func curveSize(c Curve) int {
	switch c {
	case CurveP256:
		return CoordinateSize
	case CurveP384:
		return 48
	case CurveP521:
		return 66
	}
	return 0
}

// ecdhCurve is the crypto/ecdh curve of an EC2 curve.
func ecdhCurve(c Curve) ecdh.Curve {
	switch c {
	case CurveP384:
		return ecdh.P384()
	case CurveP521:
		return ecdh.P521()
	}
	return ecdh.P256()
}

// curveAlg is the one signature algorithm a larger curve is used with (RFC 9053 §2.1).
var curveAlg = map[Curve]Algorithm{CurveP384: AlgES384, CurveP521: AlgES512}

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

// Validate checks that k is a key this package supports and, for EC2, that the point lies on
// its curve. Errors are *Error carrying the CTAP status to return.
func (k Key) Validate() error {
	switch k.Type {
	case KeyTypeEC2:
		switch k.Curve {
		case CurveP256:
			if k.Wide != nil {
				return newError(ctap.ErrInvalidParameter, "P-256 key with wide coordinates")
			}
			if k.Alg != AlgES256 && k.Alg != AlgECDHESHKDF256 {
				return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for P-256", k.Alg))
			}
		case CurveP384, CurveP521:
			if k.Alg != curveAlg[k.Curve] {
				return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for curve %d", k.Alg, k.Curve))
			}
			n := curveSize(k.Curve)
			if k.Wide == nil || len(k.Wide.X) != n || len(k.Wide.Y) != n {
				return newError(ctap.ErrInvalidParameter, fmt.Sprintf("curve %d coordinates must be %d bytes", k.Curve, n))
			}
		default:
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("EC2 curve %d is not supported", k.Curve))
		}
		if _, err := ecdhCurve(k.Curve).NewPublicKey(k.uncompressed()); err != nil {
			return newError(ctap.ErrInvalidParameter, fmt.Sprintf("point is not on curve %d", k.Curve))
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
	case KeyTypeRSA:
		if k.Alg != AlgRS256 && k.Alg != AlgPS256 {
			return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for RSA", k.Alg))
		}
		if k.Wide == nil {
			return newError(ctap.ErrInvalidParameter, "RSA key without modulus")
		}
		return validRSA(k.Wide.N, k.Wide.E)
	default:
		return newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("key type %d is not supported", k.Type))
	}
	return nil
}

// validRSA checks an RSA modulus and exponent as big-endian integers in their shortest form.
func validRSA(n, e []byte) error {
	switch {
	case len(n) == 0 || n[0] == 0 || len(e) == 0 || e[0] == 0:
		return newError(ctap.ErrInvalidParameter, "RSA modulus or exponent empty or not minimally encoded")
	case len(n)*8 < MinRSABits || len(n)*8 > MaxRSABits:
		return newError(ctap.ErrInvalidParameter, fmt.Sprintf("RSA modulus of %d bits, want %d..%d", len(n)*8, MinRSABits, MaxRSABits))
	case n[len(n)-1]&1 == 0:
		return newError(ctap.ErrInvalidParameter, "RSA modulus is even")
	case len(e) > 4 || e[len(e)-1]&1 == 0 || new(big.Int).SetBytes(e).Int64() < 3:
		return newError(ctap.ErrInvalidParameter, "RSA exponent must be odd, at least 3 and fit 32 bits")
	}
	return nil
}

// Marshal encodes k in CTAP2 canonical CBOR after validating it.
func (k Key) Marshal() ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	m := map[int]any{labelKty: int64(k.Type), labelAlg: int64(k.Alg)}
	switch {
	case k.Type == KeyTypeRSA:
		m[labelN], m[labelE] = k.Wide.N, k.Wide.E
	case k.Wide != nil:
		m[labelCrv], m[labelX], m[labelY] = int64(k.Curve), k.Wide.X, k.Wide.Y
	default:
		m[labelCrv], m[labelX] = int64(k.Curve), k.X[:]
		if k.Type == KeyTypeEC2 {
			m[labelY] = k.Y[:]
		}
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
	k.Type, k.Alg = KeyType(kty), Algorithm(alg)
	if k.Type == KeyTypeRSA { // labels -1 and -2 are n and e, byte strings (RFC 8230 §4)
		k.Wide = &Wide{}
		if k.Wide.N, err = bytesLabel(m, labelN, "n"); err != nil {
			return Key{}, err
		}
		if k.Wide.E, err = bytesLabel(m, labelE, "e"); err != nil {
			return Key{}, err
		}
		if err := k.Validate(); err != nil {
			return Key{}, err
		}
		return k, nil
	}
	crv, err := intLabel(m, labelCrv, "crv")
	if err != nil {
		return Key{}, err
	}
	k.Curve = Curve(crv)
	if k.Type == KeyTypeEC2 && (k.Curve == CurveP384 || k.Curve == CurveP521) {
		if k.Alg != curveAlg[k.Curve] {
			return Key{}, newError(ctap.ErrUnsupportedAlgorithm, fmt.Sprintf("algorithm %d is not supported for curve %d", k.Alg, k.Curve))
		}
		k.Wide = &Wide{}
		if k.Wide.X, err = sizedLabel(m, labelX, "x", curveSize(k.Curve)); err != nil {
			return Key{}, err
		}
		if k.Wide.Y, err = sizedLabel(m, labelY, "y", curveSize(k.Curve)); err != nil {
			return Key{}, err
		}
		if err := k.Validate(); err != nil {
			return Key{}, err
		}
		return k, nil
	}
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
	b, err := sizedLabel(m, label, name, CoordinateSize)
	if err != nil {
		return err
	}
	copy(dst[:], b)
	return nil
}

// sizedLabel reads a byte string that must be exactly size bytes long.
func sizedLabel(m map[int64]cbor.RawMessage, label int64, name string, size int) ([]byte, error) {
	b, err := bytesLabel(m, label, name)
	if err != nil {
		return nil, err
	}
	if len(b) != size {
		return nil, newError(ctap.ErrInvalidParameter, fmt.Sprintf("%s is %d bytes, want %d", name, len(b), size))
	}
	return b, nil
}

// bytesLabel reads a byte string: an array of small integers or any other type is not one.
func bytesLabel(m map[int64]cbor.RawMessage, label int64, name string) ([]byte, error) {
	raw, ok := m[label]
	if !ok {
		return nil, newError(ctap.ErrMissingParameter, name+" is missing")
	}
	if isNull(raw) {
		return nil, newError(ctap.ErrCBORUnexpectedType, name+" is null")
	}
	var b ctap.Bytes
	if err := decMode.Unmarshal(raw, &b); err != nil {
		return nil, decodeError(name, err)
	}
	return b, nil
}

// isNull reports CBOR null or undefined, which the library decodes into a zero value
// without error but which CTAP treats as an item of the wrong type.
func isNull(raw cbor.RawMessage) bool {
	return len(raw) == 1 && (raw[0] == 0xf6 || raw[0] == 0xf7)
}

// uncompressed returns the SEC 1 uncompressed point 0x04‖x‖y of an EC2 key.
func (k Key) uncompressed() []byte {
	x, y := k.X[:], k.Y[:]
	if k.Wide != nil {
		x, y = k.Wide.X, k.Wide.Y
	}
	b := make([]byte, 0, 1+len(x)+len(y))
	b = append(b, uncompressedPoint)
	b = append(b, x...)
	return append(b, y...)
}
