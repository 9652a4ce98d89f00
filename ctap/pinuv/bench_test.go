package pinuv

import (
	"testing"
)

func BenchmarkSharedSecret(b *testing.B) {
	for _, p := range []Protocol{V1{}, V2{}} {
		ka, err := NewKeyAgreement(nil)
		if err != nil {
			b.Fatal(err)
		}
		peer, _, err := Encapsulate(p, nil, ka.PublicCOSE())
		if err != nil {
			b.Fatal(err)
		}
		b.Run(map[int]string{1: "v1", 2: "v2"}[p.Version()], func(b *testing.B) {
			for b.Loop() {
				if _, err := ka.SharedSecret(p, peer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyV2(b *testing.B) {
	key, msg := NewToken(nil), make([]byte, 32)
	sig := V2{}.Authenticate(key, msg)
	for b.Loop() {
		if !(V2{}).Verify(key, msg, sig) {
			b.Fatal("verify failed")
		}
	}
}
