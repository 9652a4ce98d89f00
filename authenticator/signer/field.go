package signer

import "encoding/binary"

// The P-256 base field, for one job: turning a batch of nonce points from the Jacobian
// coordinates nistec computes them in to their affine x with one inversion for the whole batch
// (Montgomery's trick, as pool.go does for k⁻¹ mod n). nistec's BytesX inverts Z once per point:
// about a fifth of a nonce pair's CPU, and of a served key's CPU under sustained load.

// fieldElement is an element of GF(p) as four little-endian 64-bit limbs, in the Montgomery
// domain (x·R mod p, R = 2²⁵⁶) like nistec's own coordinates.
type fieldElement [4]uint64

var (
	// fieldP is p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1 (SEC 2, section 2.4.2).
	fieldP = [4]uint64{0xffffffffffffffff, 0x00000000ffffffff, 0x0000000000000000, 0xffffffff00000001}
	// fieldRR is R² mod p, to enter the Montgomery domain.
	fieldRR = fieldElement{0x0000000000000003, 0xfffffffbffffffff, 0xfffffffffffffffe, 0x00000004fffffffd}
	// fieldPMinus2 is the public Fermat exponent p − 2, big-endian.
	fieldPMinus2 = [32]byte{
		0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfd,
	}
)

// fieldP0 is −p⁻¹ mod 2⁶⁴: p ≡ −1 mod 2⁶⁴, so it is 1.
const fieldP0 = 1

// fieldMul sets z = x·y·R⁻¹ mod p, in constant time; inputs < p.
func fieldMul(z, x, y *fieldElement) {
	montMul((*[4]uint64)(z), (*[4]uint64)(x), (*[4]uint64)(y), &fieldP, fieldP0)
}

// fieldInvMont sets z = x⁻¹ for x in the Montgomery domain (xR ↦ x⁻¹R), by Fermat: x^(p−2)
// (montInv, in constant time). 0 yields 0.
func fieldInvMont(z, x *fieldElement) {
	fieldRRLimbs := [4]uint64(fieldRR)
	montInv((*[4]uint64)(z), (*[4]uint64)(x), &fieldP, fieldP0, &fieldRRLimbs, &fieldPMinus2)
}

// fieldToBytes leaves the Montgomery domain and stores x big-endian into b.
func fieldToBytes(b *[32]byte, x *fieldElement) {
	var v fieldElement
	one := fieldElement{1}
	fieldMul(&v, x, &one)
	binary.BigEndian.PutUint64(b[0:8], v[3])
	binary.BigEndian.PutUint64(b[8:16], v[2])
	binary.BigEndian.PutUint64(b[16:24], v[1])
	binary.BigEndian.PutUint64(b[24:32], v[0])
	clear(v[:])
}

// batchAffineX sets out[i] to the affine x = X/Z² of each Jacobian point (x[i], z[i]), all in the
// Montgomery domain, with one field inversion for the batch: prefix products z_0···z_i, the
// inverse of the last, then two multiplications per point walking back (the scheme pool.go's
// batch.generate uses for k⁻¹). prefix is scratch of the same length. A Z of 0 (the point at
// infinity, which no nonce in [1, n−1] gives) zeroes the whole batch's output: callers treat an x
// of 0 as "redo this point", never as a value.
func batchAffineX(out [][32]byte, x, z, prefix []fieldElement) {
	n := len(x)
	var inv, zinv, t fieldElement
	defer func() {
		clear(inv[:])
		clear(zinv[:])
		clear(t[:])
	}()
	prefix[0] = z[0]
	for i := 1; i < n; i++ {
		fieldMul(&prefix[i], &prefix[i-1], &z[i])
	}
	fieldInvMont(&inv, &prefix[n-1]) // (z_0···z_last)⁻¹
	for i := n - 1; i >= 0; i-- {
		if i > 0 {
			fieldMul(&zinv, &inv, &prefix[i-1]) // z_i⁻¹
			fieldMul(&inv, &inv, &z[i])         // (z_0···z_{i−1})⁻¹
		} else {
			zinv = inv
		}
		fieldMul(&t, &zinv, &zinv) // z_i⁻²
		fieldMul(&t, &x[i], &t)    // X_i·z_i⁻² = x_i
		fieldToBytes(&out[i], &t)
	}
}
