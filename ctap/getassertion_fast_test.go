package ctap

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// gaMap is a getAssertion parameter map of the shape hosts send: the allowList entry of the
// benchmark's request, Windows-like transports, options and a PIN/UV auth param.
func gaMap(withTransports, withOptions, withPin bool) map[any]any {
	desc := map[any]any{"id": bstr(64), "type": "public-key"}
	if withTransports {
		desc["transports"] = []any{"usb", "nfc"}
	}
	m := map[any]any{1: "login.microsoft.com", 2: bstr(32), 3: []any{desc}}
	if withOptions {
		m[5] = map[any]any{"up": true, "uv": false}
	}
	if withPin {
		m[6], m[7] = bstr(32), 2
	}
	return m
}

func mustMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := Marshal(v)
	require.NoError(t, err)
	return b
}

// requireSameDecode fails unless DecodeGetAssertion and the generic decoder agree on b (same
// result, or same status and message), and unless the fast decoder, when it accepts b, yields
// exactly what the generic decoder does. It reports whether the fast decoder accepted b.
func requireSameDecode(t testing.TB, b []byte) bool {
	t.Helper()
	want, wantErr := decodeGetAssertionGeneric(b)
	got, gotErr := DecodeGetAssertion(b)
	if wantErr != nil {
		require.Error(t, gotErr, "generic: %v; DecodeGetAssertion accepted %x", wantErr, b)
		require.Equal(t, StatusOf(wantErr), StatusOf(gotErr), "%x", b)
		require.Equal(t, wantErr.Error(), gotErr.Error(), "%x", b)
	} else {
		require.NoError(t, gotErr, "%x", b)
	}
	require.True(t, reflect.DeepEqual(want, got), "%x:\ngeneric %#v\nfast    %#v", b, want, got)

	fast, ok := decodeGetAssertionFast(b)
	if !ok {
		return false
	}
	var generic GetAssertionRequest
	require.NoError(t, Unmarshal(b, &generic), "the fast decoder accepted %x, the generic one does not", b)
	require.True(t, reflect.DeepEqual(&generic, fast), "%x:\ngeneric %#v\nfast    %#v", b, &generic, fast)
	return true
}

func TestDecodeGetAssertionFast(t *testing.T) {
	t.Parallel()
	cdh := "025820" + strings.Repeat("00", 32) // key 2 and a 32-byte clientDataHash
	for _, tc := range []struct {
		name string
		in   []byte
		fast bool // the fast decoder takes it
	}{
		{"bench request", mustMarshal(t, gaMap(false, false, false)), true},
		{"windows-like", mustMarshal(t, gaMap(true, true, true)), true},
		{"options only", mustMarshal(t, gaMap(false, true, false)), true},
		{"pin only", mustMarshal(t, gaMap(false, false, true)), true},
		{"zero-length pinUvAuthParam probe", mustMarshal(t, map[any]any{1: "a.example", 2: bstr(32), 6: []byte{}, 7: 1}), true},
		{"empty clientDataHash", mustHex("a2016161" + "0240"), true},
		{"empty allowList", mustHex("a3016161" + cdh + "0380"), true},
		{"empty options", mustHex("a3016161" + cdh + "05a0"), true},
		{"rk option", mustHex("a3016161" + cdh + "05a162726bf5"), true},
		{"options out of order", mustHex("a3016161" + cdh + "05a2627576f4627570f5"), true},
		{"descriptor keys out of order", mustHex("a3016161" + cdh + "0381a3" + "6a7472616e73706f7274738163757362" + "64747970656a7075626c69632d6b6579" + "62696441aa"), true},
		{"other credential type", mustHex("a3016161" + cdh + "0381a2626964420102" + "6474797065636b6579"), true},
		{"empty transports", mustHex("a3016161" + cdh + "0381a3626964420102" + "64747970656a7075626c69632d6b6579" + "6a7472616e73706f7274738" + "0"), true},
		{"descriptor without type", mustHex("a3016161" + cdh + "0381a1626964420102"), true},
		{"empty map", mustHex("a0"), true},
		{"rpId missing", mustHex("a1" + cdh), true},
		{"large protocol", mustHex("a3016161" + cdh + "071bffffffffffffffff"), true},
		{"protocol 24", mustHex("a3016161" + cdh + "071818"), true},

		{"extensions", mustMarshal(t, map[any]any{1: "a", 2: bstr(32), 4: map[any]any{"credBlob": true}}), false},
		{"unknown key", mustHex("a3016161" + cdh + "0801"), false},
		{"key zero", mustHex("a3" + "0001" + "016161" + cdh), false},
		{"text key", mustHex("a3016161" + cdh + "617801"), false},
		{"keys out of order", mustHex("a2" + cdh + "016161"), false},
		{"duplicate key", mustHex("a3016161016162" + cdh), false},
		{"non-minimal key", mustHex("a2" + "1801" + "6161" + cdh), false},
		{"non-minimal length", mustHex("a2" + "01" + "780161" + cdh), false},
		{"non-minimal protocol", mustHex("a3016161" + cdh + "071802"), false},
		{"indefinite map", mustHex("bf016161" + cdh + "ff"), false},
		{"indefinite byte string", mustHex("a2016161" + "025f4100ff"), false},
		{"tag", mustHex("a2" + "01c06161" + cdh), false},
		{"trailing bytes", append(mustMarshal(t, gaMap(false, false, false)), 0x00), false},
		{"truncated", mustMarshal(t, gaMap(true, true, true))[:40], false},
		{"invalid utf-8 rpId", mustHex("a2" + "0162c328" + cdh), false},
		{"invalid utf-8 transport", mustHex("a3016161" + cdh + "0381a3626964420102" + "64747970656a7075626c69632d6b6579" + "6a7472616e73706f7274738162c328"), false},
		{"null rpId", mustHex("a2" + "01f6" + cdh), false},
		{"null clientDataHash", mustHex("a2016161" + "02f6"), false},
		{"null options", mustHex("a3016161" + cdh + "05f6"), false},
		{"null protocol", mustHex("a3016161" + cdh + "07f6"), false},
		{"negative protocol", mustHex("a3016161" + cdh + "0720"), false},
		{"float protocol", mustHex("a3016161" + cdh + "07f93c00"), false},
		{"rpId as byte string", mustHex("a2" + "014161" + cdh), false},
		{"clientDataHash as array", mustHex("a2016161" + "02820102"), false},
		{"integer transports (Windows)", mustHex("a3016161" + cdh + "0381a3626964420102" + "64747970656a7075626c69632d6b6579" + "6a7472616e73706f727473" + "1837"), false},
		{"upper-case descriptor key", mustHex("a3016161" + cdh + "0381a2624944420102" + "64747970656a7075626c69632d6b6579"), false},
		{"unknown descriptor key", mustHex("a3016161" + cdh + "0381a3626964420102" + "64747970656a7075626c69632d6b6579" + "6178f5"), false},
		{"duplicate descriptor key", mustHex("a3016161" + cdh + "0381a2626964420102" + "626964420102"), false},
		{"unknown option", mustHex("a3016161" + cdh + "05a164706c6174f5"), false},
		{"duplicate option", mustHex("a3016161" + cdh + "05a2627570f5627570f4"), false},
		{"option not a bool", mustHex("a3016161" + cdh + "05a162757001"), false},
		{"allowList entry not a map", mustHex("a3016161" + cdh + "038101"), false},
		{"allowList too long", mustHex("a3016161" + cdh + "03990101" + strings.Repeat("a0", 257)), false},
		{"too deep", mustHex("a104" + "a1616181818181818181818100"), false},
		{"null", mustHex("f6"), false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.fast, requireSameDecode(t, tc.in), "fast decoder took %x", tc.in)
		})
	}
}

func TestDecodeGetAssertionFastEmptyPinParam(t *testing.T) {
	t.Parallel()
	r, err := DecodeGetAssertion(mustMarshal(t, map[any]any{1: "a.example", 2: bstr(32), 6: []byte{}, 7: 1}))
	require.NoError(t, err)
	require.NotNil(t, r.PinUvAuthParam, "a zero-length pinUvAuthParam is a probe, not an absent one")
	require.Empty(t, r.PinUvAuthParam)
}

// TestDecodeGetAssertionFastIsolated checks that the byte strings of a decoded request, which
// share one buffer, cannot reach into each other.
func TestDecodeGetAssertionFastIsolated(t *testing.T) {
	t.Parallel()
	r, err := DecodeGetAssertion(mustMarshal(t, gaMap(true, true, true)))
	require.NoError(t, err)
	before := append([]byte(nil), r.AllowList[0].ID...)
	_ = append(r.ClientDataHash, 0xff, 0xff, 0xff)
	clear(r.PinUvAuthParam)
	require.Equal(t, before, []byte(r.AllowList[0].ID))
	require.Equal(t, mustHex("826375736263"+"6e6663"), []byte(r.AllowList[0].Transports))
}

// randomGARequest builds a getAssertion parameter map that is usually of the fast shape and
// sometimes not: extra or wrong-typed parameters, odd allowList entries and options.
func randomGARequest(rng *rand.Rand) map[any]any {
	m := map[any]any{}
	pick := func(p float64) bool { return rng.Float64() < p }
	randBytes := func() []byte {
		n := []int{0, 1, 16, 23, 24, 32, 64, 255, 256}[rng.IntN(9)]
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	randText := func() string {
		return []string{"", "a", "example.com", "login.microsoft.com", "public-key", "\xff", "é", strings.Repeat("x", 300)}[rng.IntN(8)]
	}
	odd := func() any { return []any{nil, 1, -1, 1.5, "x", []byte{1}, []any{}, map[any]any{}}[rng.IntN(8)] }
	if pick(0.9) {
		m[1] = randText()
	}
	if pick(0.9) {
		m[2] = randBytes()
	}
	if pick(0.7) {
		var list []any
		for range rng.IntN(4) {
			d := map[any]any{}
			if pick(0.9) {
				d["id"] = randBytes()
			}
			if pick(0.9) {
				d["type"] = randText()
			}
			if pick(0.4) {
				var tr []any
				for range rng.IntN(3) {
					tr = append(tr, []string{"usb", "nfc", "ble", "internal", "hybrid"}[rng.IntN(5)])
				}
				d["transports"] = tr
			}
			if pick(0.05) {
				d[[]string{"ID", "x", "transports", "type"}[rng.IntN(4)]] = odd()
			}
			list = append(list, d)
		}
		m[3] = list
	}
	if pick(0.1) {
		m[4] = map[any]any{"credBlob": true}
	}
	if pick(0.5) {
		o := map[any]any{}
		for _, k := range []string{"rk", "up", "uv"} {
			if pick(0.5) {
				o[k] = pick(0.5)
			}
		}
		if pick(0.05) {
			o["plat"] = true
		}
		m[5] = o
	}
	if pick(0.4) {
		m[6] = randBytes()
		m[7] = []uint64{0, 1, 2, 23, 24, 255, 256, 65536, 1 << 32}[rng.IntN(9)]
	}
	if pick(0.1) {
		m[1+rng.IntN(8)] = odd()
	}
	return m
}

// mutate changes b a little: a byte flipped, dropped, added or the tail cut off.
func mutate(rng *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	if len(b) == 0 {
		return []byte{byte(rng.Uint32())}
	}
	i := rng.IntN(len(b))
	switch rng.IntN(4) {
	case 0:
		b[i] ^= byte(1 << rng.IntN(8))
	case 1:
		b = append(b[:i], b[i+1:]...)
	case 2:
		b = append(b[:i], append([]byte{byte(rng.Uint32())}, b[i:]...)...)
	default:
		b = b[:i]
	}
	return b
}

func TestDecodeGetAssertionFastRandom(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(13, 2026))
	fast := 0
	const n = 4000
	for range n {
		b := mustMarshal(t, randomGARequest(rng))
		if rng.IntN(4) == 0 {
			b = mutate(rng, b)
		}
		if requireSameDecode(t, b) {
			fast++
		}
	}
	// Most generated requests are of the fast shape; a fast path that gave up on everything
	// would agree with the generic one trivially.
	require.Greater(t, fast, n/4, "the fast decoder took too few requests")
}

// FuzzDecodeGetAssertionFast holds the fast decoder to the generic one: for any input, what the
// fast decoder accepts the generic one accepts with an equal result, and DecodeGetAssertion's
// answer (result, or status and message) is the generic path's.
func FuzzDecodeGetAssertionFast(f *testing.F) {
	for _, tr := range []bool{false, true} {
		for _, opts := range []bool{false, true} {
			for _, pin := range []bool{false, true} {
				f.Add(mustMarshal(f, gaMap(tr, opts, pin)))
			}
		}
	}
	f.Add(mustMarshal(f, map[any]any{1: "a.example", 2: bstr(32), 6: []byte{}, 7: 1}))
	f.Add(mustHex("a3016161" + "025820" + strings.Repeat("00", 32) + "05a2627576f4627570f5"))
	f.Add(mustHex("a3016161" + "025820" + strings.Repeat("00", 32) + "0381a3626964420102" + "64747970656a7075626c69632d6b6579" + "6a7472616e73706f727473" + "1837"))
	rng := rand.New(rand.NewPCG(1, 2))
	for range 16 {
		f.Add(mustMarshal(f, randomGARequest(rng)))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		requireSameDecode(t, b)
	})
}

func BenchmarkDecodeGetAssertion(b *testing.B) {
	for _, tc := range []struct {
		name string
		req  []byte
	}{
		{"bench-request", mustMarshal(b, gaMap(false, false, false))},
		{"windows-like", mustMarshal(b, gaMap(true, true, true))},
	} {
		b.Run(tc.name+"/generic", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := decodeGetAssertionGeneric(tc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(tc.name+"/fast", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeGetAssertion(tc.req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
