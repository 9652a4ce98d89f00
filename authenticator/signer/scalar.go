package signer

import (
	"encoding/binary"
	"math/bits"

	"filippo.io/bigmod"
)

// orderBytes is n, the order of the P-256 base point (SEC 2, section 2.4.2), big-endian.
var orderBytes = []byte{
	0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
}

// order is n as a bigmod modulus, shared read-only by every signer and key.
var order = mustModulus(orderBytes)

func mustModulus(b []byte) *bigmod.Modulus {
	m, err := bigmod.NewModulus(b)
	if err != nil {
		panic("signer: invalid built-in modulus: " + err.Error()) // constant input, cannot happen
	}
	return m
}

// ordElement is a scalar mod n as four little-endian 64-bit limbs. It exists
// for the inversion of k (bigmod's generic Exp took ~1.7× as long side by
// side) and carries the request path's s = k⁻¹(e + r·d) too, where bigmod's
// generic multiplications and their allocations cost ~0.6 µs a signature.
type ordElement [4]uint64

var (
	ordN = ordElement{0xf3b9cac2fc632551, 0xbce6faada7179e84, 0xffffffffffffffff, 0xffffffff00000000}
	// ordN0 is -n⁻¹ mod 2⁶⁴, the Montgomery reduction constant.
	ordN0 uint64 = 0xccd1c8aaee00bc4f
	// ordRR is R² mod n with R = 2²⁵⁶, used to enter the Montgomery domain.
	ordRR = ordElement{0x83244c95be79eea2, 0x4699799c49bd6fa6, 0x2845b2392b6bec59, 0x66e12d94f3d95620}
	// ordNMinus2 is the public Fermat exponent n-2, big-endian.
	ordNMinus2 = func() [32]byte {
		var e [32]byte
		copy(e[:], orderBytes)
		e[31] -= 2
		return e
	}()
)

// ordMul sets z = x·y·R⁻¹ mod n (CIOS Montgomery multiplication). Inputs must
// be < n; the output is < n. Runs in constant time.
func ordMul(z, x, y *ordElement) {
	montMul((*[4]uint64)(z), (*[4]uint64)(x), (*[4]uint64)(y), (*[4]uint64)(&ordN), ordN0)
}

// montMul sets z = x·y·R⁻¹ mod m with R = 2²⁵⁶ (CIOS Montgomery multiplication), for a 256-bit
// odd modulus m with m0 = -m⁻¹ mod 2⁶⁴: the order n here, the field prime p in field.go. Inputs
// must be < m; the output is < m. Runs in constant time.
func montMul(z, x, y, m *[4]uint64, m0 uint64) {
	var t0, t1, t2, t3, t4, t5 uint64
	for i := 0; i < 4; i++ {
		var c, hi, lo, cc uint64
		yi := y[i]
		hi, lo = bits.Mul64(x[0], yi)
		t0, cc = bits.Add64(t0, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(x[1], yi)
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t1, cc = bits.Add64(t1, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(x[2], yi)
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t2, cc = bits.Add64(t2, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(x[3], yi)
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t3, cc = bits.Add64(t3, lo, 0)
		c = hi + cc
		t4, cc = bits.Add64(t4, c, 0)
		t5 = cc

		q := t0 * m0
		hi, lo = bits.Mul64(q, m[0])
		_, cc = bits.Add64(t0, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(q, m[1])
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t0, cc = bits.Add64(t1, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(q, m[2])
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t1, cc = bits.Add64(t2, lo, 0)
		c = hi + cc
		hi, lo = bits.Mul64(q, m[3])
		lo, cc = bits.Add64(lo, c, 0)
		hi += cc
		t2, cc = bits.Add64(t3, lo, 0)
		c = hi + cc
		t3, cc = bits.Add64(t4, c, 0)
		t4 = t5 + cc
	}
	// t < 2m: subtract m once and keep the difference unless it borrowed.
	var s0, s1, s2, s3, b uint64
	s0, b = bits.Sub64(t0, m[0], 0)
	s1, b = bits.Sub64(t1, m[1], b)
	s2, b = bits.Sub64(t2, m[2], b)
	s3, b = bits.Sub64(t3, m[3], b)
	_, b = bits.Sub64(t4, 0, b)
	keep := -b // all ones when t < m
	z[0] = t0&keep | s0&^keep
	z[1] = t1&keep | s1&^keep
	z[2] = t2&keep | s2&^keep
	z[3] = t3&keep | s3&^keep
}

// ordAdd sets z = x + y mod n for x, y < n, in constant time. It works in and out of the
// Montgomery domain alike.
func ordAdd(z, x, y *ordElement) {
	var c, b uint64
	var t, u ordElement
	t[0], c = bits.Add64(x[0], y[0], 0)
	t[1], c = bits.Add64(x[1], y[1], c)
	t[2], c = bits.Add64(x[2], y[2], c)
	t[3], c = bits.Add64(x[3], y[3], c)
	u[0], b = bits.Sub64(t[0], ordN[0], 0)
	u[1], b = bits.Sub64(t[1], ordN[1], b)
	u[2], b = bits.Sub64(t[2], ordN[2], b)
	u[3], b = bits.Sub64(t[3], ordN[3], b)
	// t < n exactly when the sum did not carry and subtracting n borrowed: then keep t.
	_, b = bits.Sub64(c, 0, b)
	keep := -b
	for i := range z {
		z[i] = t[i]&keep | u[i]&^keep
	}
}

// ordInvMont sets z = x⁻¹ for x in the Montgomery domain (xR ↦ x⁻¹R), by
// Fermat: x^(n-2). x = 0 yields 0.
func ordInvMont(z, x *ordElement) {
	montInv((*[4]uint64)(z), (*[4]uint64)(x), (*[4]uint64)(&ordN), ordN0, (*[4]uint64)(&ordRR), &ordNMinus2)
}

// montInv sets z = x^e·R^(1−e) for x in the Montgomery domain of modulus m (m0 = −m⁻¹ mod 2⁶⁴,
// rr = R² mod m), with e = m − 2 big-endian: by Fermat, xR ↦ x⁻¹R. The exponent is public, so a
// fixed 4-bit window indexed by its nibbles leaks nothing about x. x = 0 yields 0.
func montInv(z, x, m *[4]uint64, m0 uint64, rr *[4]uint64, e *[32]byte) {
	var table [16][4]uint64
	one := [4]uint64{1}
	montMul(&table[0], &one, rr, m, m0) // R mod m, the Montgomery form of 1
	table[1] = *x
	for i := 2; i < 16; i++ {
		montMul(&table[i], &table[i-1], x, m, m0)
	}
	acc := table[0]
	for _, byt := range e {
		for _, nib := range [2]byte{byt >> 4, byt & 0x0f} {
			for j := 0; j < 4; j++ {
				montMul(&acc, &acc, &acc, m, m0)
			}
			montMul(&acc, &acc, &table[nib], m, m0)
		}
	}
	*z = acc
	clear(table[:])
	clear(acc[:])
}

// ordFromBytes loads a 32-byte big-endian value and reports (in constant
// time) whether it is a valid nonzero scalar, i.e. 0 < v < n.
func ordFromBytes(z *ordElement, b *[32]byte) int {
	z[3] = binary.BigEndian.Uint64(b[0:8])
	z[2] = binary.BigEndian.Uint64(b[8:16])
	z[1] = binary.BigEndian.Uint64(b[16:24])
	z[0] = binary.BigEndian.Uint64(b[24:32])
	var borrow uint64
	_, borrow = bits.Sub64(z[0], ordN[0], 0)
	_, borrow = bits.Sub64(z[1], ordN[1], borrow)
	_, borrow = bits.Sub64(z[2], ordN[2], borrow)
	_, borrow = bits.Sub64(z[3], ordN[3], borrow)
	acc := z[0] | z[1] | z[2] | z[3]
	nonzero := (acc | -acc) >> 63
	return int(borrow & nonzero)
}

// ordToBytes stores z big-endian into b.
func ordToBytes(b *[32]byte, z *ordElement) {
	binary.BigEndian.PutUint64(b[0:8], z[3])
	binary.BigEndian.PutUint64(b[8:16], z[2])
	binary.BigEndian.PutUint64(b[16:24], z[1])
	binary.BigEndian.PutUint64(b[24:32], z[0])
}

// appendDERInteger appends v (big-endian, public) as a minimal DER INTEGER.
func appendDERInteger(dst, v []byte) []byte {
	for len(v) > 1 && v[0] == 0 {
		v = v[1:]
	}
	if v[0]&0x80 != 0 {
		dst = append(dst, 0x02, byte(len(v)+1), 0x00)
	} else {
		dst = append(dst, 0x02, byte(len(v)))
	}
	return append(dst, v...)
}

// encodeDER returns the ASN.1 DER Ecdsa-Sig-Value SEQUENCE { r INTEGER, s INTEGER }
// used by WebAuthn ES256 and U2F. At most 72 bytes, so every length fits one byte.
func encodeDER(r, s *[32]byte) []byte {
	out := make([]byte, 2, 72)
	out[0] = 0x30
	out = appendDERInteger(out, r[:])
	out = appendDERInteger(out, s[:])
	out[1] = byte(len(out) - 2)
	return out
}

// subN sets z = z - n; only for public values already known to be ≥ n.
func subN(z *ordElement) {
	var b uint64
	z[0], b = bits.Sub64(z[0], ordN[0], 0)
	z[1], b = bits.Sub64(z[1], ordN[1], b)
	z[2], b = bits.Sub64(z[2], ordN[2], b)
	z[3], _ = bits.Sub64(z[3], ordN[3], b)
}

func isZero(b *[32]byte) bool {
	var acc byte
	for _, v := range b {
		acc |= v
	}
	return acc == 0
}

// natToBytes writes a value reduced mod n as 32 big-endian bytes without the
// allocation bigmod's Bytes makes.
func natToBytes(b *[32]byte, x *bigmod.Nat) {
	const limbBytes = bits.UintSize / 8
	for i, limb := range x.Bits() {
		for j := 0; j < limbBytes; j++ {
			if idx := 31 - (i*limbBytes + j); idx >= 0 {
				b[idx] = byte(limb >> (8 * j))
			}
		}
	}
}
