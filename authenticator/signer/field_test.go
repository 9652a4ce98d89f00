package signer

import (
	"bytes"
	"crypto/ecdh"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"math/big"
	"runtime"
	"testing"

	"filippo.io/nistec"
	"github.com/stretchr/testify/require"
)

var bigP = elliptic.P256().Params().P

// fieldFromBig returns v (< p) in the Montgomery domain.
func fieldFromBig(v *big.Int) fieldElement {
	var b [32]byte
	v.FillBytes(b[:])
	var z, plain fieldElement
	for i := range 4 {
		plain[i] = binary.BigEndian.Uint64(b[24-8*i:])
	}
	fieldMul(&z, &plain, &fieldRR)
	return z
}

// fieldToBig leaves the Montgomery domain.
func fieldToBig(z *fieldElement) *big.Int {
	var b [32]byte
	fieldToBytes(&b, z)
	return new(big.Int).SetBytes(b[:])
}

func randField(t testing.TB) *big.Int { return randBelow(t, bigP) }

func TestFieldConstants(t *testing.T) {
	t.Parallel()
	var b [32]byte
	var p fieldElement = fieldP
	plainToBytes(&b, &p)
	require.Equal(t, bigP.Bytes(), b[:])
	r := new(big.Int).Lsh(big.NewInt(1), 256)
	rr := fieldElement(fieldRR)
	plainToBytes(&b, &rr)
	require.Equal(t, new(big.Int).Mod(new(big.Int).Mul(r, r), bigP).FillBytes(make([]byte, 32)), b[:], "R² mod p")
	require.Equal(t, new(big.Int).Sub(bigP, big.NewInt(2)).FillBytes(make([]byte, 32)), fieldPMinus2[:])
	require.Equal(t, ^uint64(0), fieldP[0]*fieldP0, "p0 = -p⁻¹ mod 2⁶⁴")
}

func plainToBytes(b *[32]byte, z *fieldElement) {
	for i := range 4 {
		for j := range 8 {
			b[31-8*i-j] = byte(z[i] >> (8 * j))
		}
	}
}

func TestFieldMulAndInvMatchBig(t *testing.T) {
	t.Parallel()
	pm1 := new(big.Int).Sub(bigP, big.NewInt(1))
	edges := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), pm1, new(big.Int).Rsh(bigP, 1)}
	check := func(a, b *big.Int) {
		x, y := fieldFromBig(a), fieldFromBig(b)
		require.Equal(t, 0, fieldToBig(&x).Cmp(a), "round trip %x", a)
		var z fieldElement
		fieldMul(&z, &x, &y)
		want := new(big.Int).Mul(a, b)
		require.Equal(t, 0, fieldToBig(&z).Cmp(want.Mod(want, bigP)), "%x * %x", a, b)
	}
	for _, a := range edges {
		for _, b := range edges {
			check(a, b)
		}
	}
	for range 1000 {
		check(randField(t), randField(t))
	}
	for _, v := range append(edges[1:], randField(t), randField(t)) {
		x := fieldFromBig(v)
		var inv fieldElement
		fieldInvMont(&inv, &x)
		require.Equal(t, 0, fieldToBig(&inv).Cmp(new(big.Int).ModInverse(v, bigP)), "1/%x", v)
	}
	var zero, inv fieldElement
	fieldInvMont(&inv, &zero)
	require.Equal(t, fieldElement{}, inv, "0 has no inverse: 0")
}

// TestBatchAffineXMatchesBytesX: the batch conversion gives, for every point of batches of
// several sizes, the x nistec's BytesX gives.
func TestBatchAffineXMatchesBytesX(t *testing.T) {
	t.Parallel()
	if !jacobianOK {
		t.Skip("this build reads no nistec coordinates (TestJacobianOnThisBuild says which builds do)")
	}
	for _, n := range []int{1, 2, 16, 33} {
		points := make([]*nistec.P256Point, n)
		px, pz, prefix := make([]fieldElement, n), make([]fieldElement, n), make([]fieldElement, n)
		for i := range points {
			k := randScalar(t).FillBytes(make([]byte, 32))
			p, err := nistec.NewP256Point().ScalarBaseMult(k)
			require.NoError(t, err)
			points[i] = p
			x, z := jacobian(p)
			px[i], pz[i] = *x, *z
		}
		out := make([][32]byte, n)
		batchAffineX(out, px, pz, prefix)
		for i, p := range points {
			want, err := p.BytesX()
			require.NoError(t, err)
			require.Equal(t, want, out[i][:], "batch of %d, point %d", n, i)
		}
	}
}

// TestJacobianOnThisBuild fails if a nistec upgrade changed the point layout on a build whose
// layout this package knows: the pool would still be right (it falls back to BytesX) but a
// fifth slower, and that must not happen unnoticed.
func TestJacobianOnThisBuild(t *testing.T) {
	t.Parallel()
	switch runtime.GOARCH {
	case "amd64", "arm64", "ppc64le", "s390x":
		if !purego {
			require.True(t, jacobianOK, "nistec's P256Point layout is not the one coords_asm.go reads")
		}
	default:
		require.False(t, jacobianOK)
	}
}

// TestBatchedPairsAreRight derives a batch's nonces from a known stream and checks every pair
// against math/big and crypto/ecdh: r = x(k·G) mod n and kinv = k⁻¹ mod n.
func TestBatchedPairsAreRight(t *testing.T) {
	t.Parallel()
	const n = 16
	stream := make([]byte, 32*n)
	_, err := rand.Read(stream)
	require.NoError(t, err)
	stream[0] = 0xff // the first draw is ≥ n: rejected, so every later k shifts by one draw
	for i := 1; i < 32; i++ {
		stream[i] = 0xff
	}
	extra := make([]byte, 32)
	_, err = rand.Read(extra)
	require.NoError(t, err)
	b := newBatch(n)
	require.NoError(t, b.generate(bytes.NewReader(append(stream, extra...)), n))
	draws := append(stream[32:], extra...)
	for i := range n {
		k := new(big.Int).SetBytes(draws[32*i : 32*i+32])
		priv, err := ecdh.P256().NewPrivateKey(k.FillBytes(make([]byte, 32)))
		require.NoError(t, err)
		x := new(big.Int).SetBytes(priv.PublicKey().Bytes()[1:33]) // 04 ‖ X ‖ Y
		r := new(big.Int).Mod(x, bigN)
		require.Equal(t, r.FillBytes(make([]byte, 32)), b.pairs[i].r[:], "r of pair %d", i)
		kinv := new(big.Int).ModInverse(k, bigN)
		require.Equal(t, kinv.FillBytes(make([]byte, 32)), b.pairs[i].kinv[:], "kinv of pair %d", i)
	}
}

// TestBatchedPairRedrawnWhenRIsZero: a point whose x comes out 0 (r = 0, or a Z of 0; neither
// happens with real nonces, so the batch conversion is made to report it) gets a fresh k, and its
// pair is right for that k, not for the batch's last point.
func TestBatchedPairRedrawnWhenRIsZero(t *testing.T) {
	t.Parallel()
	if !jacobianOK {
		t.Skip("this build converts each point with BytesX: there is no batched path")
	}
	const n = 8
	stream := make([]byte, 32*(n+1))
	_, err := rand.Read(stream)
	require.NoError(t, err)
	b := newBatch(n)
	b.affineX = func(out [][32]byte, x, z, prefix []fieldElement) {
		batchAffineX(out, x, z, prefix)
		out[3] = [32]byte{} // as if point 3 had x = 0
	}
	require.NoError(t, b.generate(bytes.NewReader(stream), n))
	ks := make([][]byte, n)
	for i := range n {
		ks[i] = stream[32*i : 32*i+32]
	}
	ks[3] = stream[32*n:] // point 3's nonce is the one drawn after the batch
	for i, kb := range ks {
		k := new(big.Int).SetBytes(kb)
		priv, err := ecdh.P256().NewPrivateKey(kb)
		require.NoError(t, err)
		x := new(big.Int).SetBytes(priv.PublicKey().Bytes()[1:33])
		require.Equal(t, new(big.Int).Mod(x, bigN).FillBytes(make([]byte, 32)), b.pairs[i].r[:], "r of pair %d", i)
		require.Equal(t, new(big.Int).ModInverse(k, bigN).FillBytes(make([]byte, 32)), b.pairs[i].kinv[:], "kinv of pair %d", i)
	}
}
