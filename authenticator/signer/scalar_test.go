package signer

import (
	"crypto/rand"
	"encoding/asn1"
	"math/big"
	"testing"

	"github.com/stretchr/testify/require"
)

var bigN = new(big.Int).SetBytes(orderBytes)

func ordToBig(z *ordElement) *big.Int {
	var b [32]byte
	ordToBytes(&b, z)
	return new(big.Int).SetBytes(b[:])
}

func ordFromBig(t testing.TB, v *big.Int) ordElement {
	var b [32]byte
	v.FillBytes(b[:])
	var z ordElement
	ordFromBytes(&z, &b)
	require.Equal(t, 0, ordToBig(&z).Cmp(v))
	return z
}

func randScalar(t testing.TB) *big.Int { return randBelow(t, bigN) }

// randBelow draws uniformly from [0, m).
func randBelow(t testing.TB, m *big.Int) *big.Int {
	v, err := rand.Int(rand.Reader, m)
	require.NoError(t, err)
	return v
}

func TestOrderConstants(t *testing.T) {
	t.Parallel()
	require.Equal(t, 0, ordToBig(&ordN).Cmp(bigN))
	r := new(big.Int).Lsh(big.NewInt(1), 256)
	rr := new(big.Int).Mod(new(big.Int).Mul(r, r), bigN)
	require.Equal(t, 0, ordToBig(&ordRR).Cmp(rr), "R² mod n")
	// n·n0 ≡ -1 mod 2⁶⁴
	require.Equal(t, ^uint64(0), ordN[0]*ordN0, "n0 = -n⁻¹ mod 2⁶⁴")
}

func TestOrdMulMatchesBig(t *testing.T) {
	t.Parallel()
	rInv := new(big.Int).ModInverse(new(big.Int).Lsh(big.NewInt(1), 256), bigN)
	nm1 := new(big.Int).Sub(bigN, big.NewInt(1))
	edges := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(2), nm1, new(big.Int).Rsh(bigN, 1)}
	check := func(a, b *big.Int) {
		x, y := ordFromBig(t, a), ordFromBig(t, b)
		var z ordElement
		ordMul(&z, &x, &y)
		want := new(big.Int).Mul(a, b)
		want.Mul(want, rInv).Mod(want, bigN)
		require.Equal(t, 0, ordToBig(&z).Cmp(want), "%x * %x", a, b)
	}
	for _, a := range edges {
		for _, b := range edges {
			check(a, b)
		}
	}
	for range 2000 {
		check(randScalar(t), randScalar(t))
	}
}

func TestOrdInvMont(t *testing.T) {
	t.Parallel()
	one := ordElement{1}
	nm1 := new(big.Int).Sub(bigN, big.NewInt(1))
	values := []*big.Int{big.NewInt(1), big.NewInt(2), nm1}
	for range 200 {
		values = append(values, randScalar(t))
	}
	for _, v := range values {
		if v.Sign() == 0 {
			continue
		}
		x := ordFromBig(t, v)
		var xm, inv ordElement
		ordMul(&xm, &x, &ordRR)
		ordInvMont(&inv, &xm)
		ordMul(&inv, &inv, &one)
		require.Equal(t, 0, ordToBig(&inv).Cmp(new(big.Int).ModInverse(v, bigN)), "inverse of %x", v)
	}
}

func TestOrdFromBytes(t *testing.T) {
	t.Parallel()
	nm1 := new(big.Int).Sub(bigN, big.NewInt(1))
	tests := []struct {
		name  string
		v     *big.Int
		valid int
	}{
		{"zero", big.NewInt(0), 0},
		{"one", big.NewInt(1), 1},
		{"n-1", nm1, 1},
		{"n", bigN, 0},
		{"n+1", new(big.Int).Add(bigN, big.NewInt(1)), 0},
		{"max", new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 256), big.NewInt(1)), 0},
	}
	for _, tc := range tests {
		var b [32]byte
		tc.v.FillBytes(b[:])
		var z ordElement
		require.Equal(t, tc.valid, ordFromBytes(&z, &b), tc.name)
	}
}

func TestDigestToOrd(t *testing.T) {
	t.Parallel()
	ff := make([]byte, 64)
	for i := range ff {
		ff[i] = 0xff
	}
	long := make([]byte, 48)
	_, _ = rand.Read(long)
	tests := []struct {
		name   string
		digest []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x80}},
		{"20 bytes", long[:20]},
		{"32 zero", make([]byte, 32)},
		{"32 ff (≥ n)", ff[:32]},
		{"48 bytes", long},
		{"64 ff", ff},
	}
	for _, tc := range tests {
		want := new(big.Int).SetBytes(tc.digest[:min(32, len(tc.digest))])
		want.Mod(want, bigN)
		var e ordElement
		digestToOrd(&e, tc.digest)
		require.Equal(t, 0, ordToBig(&e).Cmp(want), tc.name)
	}
}

func TestOrdAddMatchesBig(t *testing.T) {
	t.Parallel()
	nm1 := new(big.Int).Sub(bigN, big.NewInt(1))
	edges := []*big.Int{big.NewInt(0), big.NewInt(1), nm1, new(big.Int).Rsh(bigN, 1),
		new(big.Int).Add(new(big.Int).Rsh(bigN, 1), big.NewInt(1))}
	check := func(a, b *big.Int) {
		x, y := ordFromBig(t, a), ordFromBig(t, b)
		var z ordElement
		ordAdd(&z, &x, &y)
		want := new(big.Int).Add(a, b)
		want.Mod(want, bigN)
		require.Equal(t, 0, ordToBig(&z).Cmp(want), "%x + %x", a, b)
	}
	for _, a := range edges {
		for _, b := range edges {
			check(a, b)
		}
	}
	for range 2000 {
		check(randScalar(t), randScalar(t))
	}
}

func TestEncodeDER(t *testing.T) {
	t.Parallel()
	var zeroHigh, high, small, one [32]byte
	zeroHigh[1] = 0x80 // leading zero byte stripped, then high bit needs a pad
	for i := range high {
		high[i] = 0xff
	}
	small[31] = 0x7f
	one[31] = 1
	cases := [][2][32]byte{{zeroHigh, high}, {high, small}, {small, one}, {one, zeroHigh}}
	for range 500 {
		var a, b [32]byte
		_, _ = rand.Read(a[:])
		_, _ = rand.Read(b[:])
		a[0] >>= uint(a[1] % 9) // vary the leading bytes
		cases = append(cases, [2][32]byte{a, b})
	}
	for _, c := range cases {
		der := encodeDER(&c[0], &c[1])
		var sig struct{ R, S *big.Int }
		rest, err := asn1.Unmarshal(der, &sig)
		require.NoError(t, err)
		require.Empty(t, rest)
		require.Equal(t, 0, sig.R.Cmp(new(big.Int).SetBytes(c[0][:])))
		require.Equal(t, 0, sig.S.Cmp(new(big.Int).SetBytes(c[1][:])))
		want, err := asn1.Marshal(sig) // encoding/asn1 emits minimal DER
		require.NoError(t, err)
		require.Equal(t, want, der)
	}
}
