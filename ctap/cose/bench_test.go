package cose

import "testing"

func BenchmarkUnmarshal(b *testing.B) {
	data, err := fixedKey(b, AlgECDHESHKDF256).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Unmarshal(data); err != nil {
			b.Fatal(err)
		}
	}
}
