//go:build (amd64 || arm64 || ppc64le || s390x) && !purego

package signer

import (
	"unsafe"

	"filippo.io/nistec"
)

// nistecJacobian is how nistec's assembly-backed P256Point (the build this file is for: the same
// constraint as nistec's p256_asm.go) holds a point: Jacobian X, Y, Z, each four little-endian
// limbs in the Montgomery domain. nistec has no API that hands out a point without inverting Z,
// so the batch reads them. jacobianOK (below) proves the layout on the running binary before any
// nonce is computed this way; if a nistec upgrade changed it, the pool falls back to BytesX.
type nistecJacobian struct{ x, y, z fieldElement }

// jacobian returns p's X and Z. Only for use when jacobianOK.
func jacobian(p *nistec.P256Point) (x, z *fieldElement) {
	j := (*nistecJacobian)(unsafe.Pointer(p))
	return &j.x, &j.z
}

// jacobianOK is whether reading coordinates gives the same x as nistec's BytesX on this binary,
// checked once at start-up on points whose Z is not 1 (G+G, 3G, and a multiple of G by a fixed
// scalar). It is false if the struct's size or meaning ever differs.
var jacobianOK = func() bool {
	if unsafe.Sizeof(nistec.P256Point{}) != unsafe.Sizeof(nistecJacobian{}) {
		return false
	}
	g := nistec.NewP256Point().SetGenerator()
	p2 := nistec.NewP256Point().Add(g, g)
	p3 := nistec.NewP256Point().Add(p2, g)
	k := [32]byte{31: 0x2a, 7: 0x99, 15: 0x5c}
	pk, err := nistec.NewP256Point().ScalarBaseMult(k[:])
	if err != nil {
		return false
	}
	for _, p := range []*nistec.P256Point{p2, p3, pk} {
		want, err := p.BytesX()
		if err != nil {
			return false
		}
		j := (*nistecJacobian)(unsafe.Pointer(p))
		var got [1][32]byte
		var prefix [1]fieldElement
		batchAffineX(got[:], []fieldElement{j.x}, []fieldElement{j.z}, prefix[:])
		if string(got[0][:]) != string(want) {
			return false
		}
	}
	return true
}()
